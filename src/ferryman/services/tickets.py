"""Release tickets (上线单): create, submit, approve or reject, deploy, cancel, roll back.

A ticket pins the commit its ref pointed to when it was created: what the approver reviewed is
exactly what ships, even if the branch moves on. Transitions are checked by
``ferryman.domain.tickets``; each call is one transaction with one audit row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ferryman.config.project import ProjectConfig
from ferryman.config.settings import Settings
from ferryman.db.models import Deploy, DeployHost, HostState, Project, Release, Ticket, utcnow
from ferryman.db.outage import retries_lost_races
from ferryman.db.session import Database
from ferryman.domain import release_request, validate
from ferryman.domain import tickets as states
from ferryman.domain.statuses import TicketStatus
from ferryman.errors import (
    ApprovalStale,
    Conflict,
    NotFound,
    OwnTicket,
    TooEarly,
    ValidationError,
)
from ferryman.said import said
from ferryman.services import approval, deploys, notifications, projects, promotion, queue, repos
from ferryman.services.audit import Actor, record
from ferryman.services.authz import project_role, require, visible_space_ids
from ferryman.services.config_files import config_views
from ferryman.services.project_locks import lock_live_project, lock_project_shared
from ferryman.services.space_access import space_access


def ticket_dict(ticket: Ticket, project: Project | None = None) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "space_id": ticket.space_id,
        "project_id": ticket.project_id,
        "project": project.name if project else None,
        "env": ticket.env,
        "kind": ticket.kind,
        "ref": ticket.ref,
        "commit": ticket.commit,
        "target_release": ticket.target_release,
        "hosts": ticket.hosts,
        "title": ticket.title,
        "description": ticket.description,
        "not_before": ticket.not_before.isoformat() if ticket.not_before else None,
        "status": ticket.status,
        "rollback_of": ticket.rollback_of,
        "deploy_id": ticket.deploy_id,
        "created_by": ticket.created_by_name,
        "reviewed_by": ticket.reviewed_by_name or None,
        "review_comment": ticket.review_comment,
        "reviewed_at": ticket.reviewed_at.isoformat() if ticket.reviewed_at else None,
        "created_at": ticket.created_at.isoformat(),
        "updated_at": ticket.updated_at.isoformat(),
    }


def _load(
    s: Session, actor: Actor, ticket_id: int, action: str, lock: bool = False
) -> tuple[Ticket, Project]:
    """The ticket and its project; ``lock``: the ticket's row locked (read again) for the
    transaction that moves it, so two moves (a deploy and a release request's ``PUT``, say)
    never both go through on what each read before the other wrote — after its project's
    row, locked shared (``_lock_project_first``)."""
    missing = NotFound(said("no ticket #%(id)s", id=ticket_id))
    if lock:
        _lock_project_first(s, ticket_id)
    ticket = (
        s.get(Ticket, ticket_id, with_for_update=True, populate_existing=True)
        if lock
        else s.get(Ticket, ticket_id)
    )
    if ticket is None:
        raise missing
    project = s.get(Project, ticket.project_id)
    if project is None:  # deleted meanwhile: its tickets with it
        raise missing
    try:
        require(s, actor, action, project=project, what=f"ticket #{ticket_id}")
    except NotFound:  # another space's: refused word for word (template too) as a missing one
        raise missing from None
    return ticket, project


def _lock_project_first(s: Session, ticket_id: int) -> None:
    """The lock order (``docs/architecture.md``, "Concurrency"): a project's row before its
    tickets'. A move that deploys inserts a deploy, which locks the project's row (its foreign
    key), and a deletion locks the project's row, then its open tickets: taking the ticket's
    first would let the two deadlock. Shared (``project_locks.lock_project_shared``): moves
    of tickets of one project do not wait for each other, only for a deletion or an apply of
    it. A ticket's project never changes, so it is read unlocked."""
    project_id = s.scalar(select(Ticket.project_id).where(Ticket.id == ticket_id))
    if project_id is not None:
        lock_project_shared(s, project_id)


def _move(s: Session, ticket: Ticket, target: TicketStatus) -> None:
    states.check_transition(ticket.id, ticket.status, target)
    ticket.status = target
    ticket.updated_at = utcnow()


def _audit(s: Session, actor: Actor, action: str, ticket: Ticket, **detail: Any) -> None:
    record(
        s,
        actor,
        action,
        f"ticket:{ticket.id}",
        space_id=ticket.space_id,
        project_id=ticket.project_id,
        status=ticket.status,
        **detail,
    )


def _first_state(
    s: Session, project: Project, env: str, draft: bool, hosts: Sequence[str] | None
) -> TicketStatus:
    if draft:
        return TicketStatus.DRAFT
    config = projects.effective_config(s, project)
    needs = approval.approving_environments(s, project, config, env, hosts)
    return TicketStatus.PENDING_APPROVAL if needs else TicketStatus.APPROVED


def stale_approval(s: Session, ticket: Ticket, project: Project) -> str:
    """Why ``ticket`` may not run as approved ("" when it may): it needs approval now and
    nobody reviewed it, or what it would run changed since the review."""
    if ticket.kind == "rollback":
        return ""  # created by a master, queued at once: nothing else to approve
    config = projects.effective_config(s, project)
    needed = approval.approving_environments(s, project, config, ticket.env, ticket.hosts)
    if not needed:
        return ""
    if not ticket.reviewed_by_name:
        return approval.describe(needed, ticket.env) + f"; ticket #{ticket.id} was never reviewed"
    if ticket.approved_digest:
        if ticket.approved_digest != approval.ticket_digest(s, project, config, ticket):
            return (
                f"{project.name} {ticket.env} changed after ticket #{ticket.id} was approved "
                "(hooks, hosts, paths, strategy, repository or config files)"
            )
        return ""
    # Approved before approvals carried a digest: valid while the project is unchanged.
    if ticket.reviewed_at is not None and project.updated_at > ticket.reviewed_at:
        return f"{project.name} changed after ticket #{ticket.id} was approved"
    return ""


def back_to_review(db: Database, actor: Actor, ticket_id: int, why: str) -> None:
    """The approval no longer covers what the ticket would run: it goes back to review
    (its own transaction, so the refusal that follows does not undo it)."""
    with db.transaction() as s:
        ticket = s.get(Ticket, ticket_id)
        project = s.get(Project, ticket.project_id) if ticket else None
        if ticket is None or project is None:
            return
        _move(s, ticket, TicketStatus.PENDING_APPROVAL)
        ticket.approved_digest = ""
        ticket.reviewed_by_name = ""
        ticket.reviewed_at = None
        _audit(s, actor, "ticket.approval_stale", ticket, reason=why)
        notifications.ticket_event(s, "ticket.submitted", ticket, actor)


def _refuse_stale(db: Database, actor: Actor, ticket_id: int, why: str) -> None:
    back_to_review(db, actor, ticket_id, why)
    raise ApprovalStale(
        said("%(why)s: the ticket is back in review; a master approves it again", why=why),
        ticket_id=ticket_id,
    )


async def create_ticket(
    db: Database,
    settings: Settings,
    actor: Actor,
    project_ref: int | str,
    env: str,
    ref: str,
    *,
    title: str,
    description: str = "",
    hosts: Sequence[str] | None = None,
    not_before: datetime | None = None,
    draft: bool = False,
    config_only: bool = False,
    promoted_from: int | None = None,
) -> dict[str, Any]:
    """Resolve ``ref`` to its commit now (it is what the approver reviews), then store the
    ticket as draft, pending_approval or — where no approval is needed — approved. A
    ``config_only`` ticket ships the release the hosts run now again with the current config
    files (no ref: its commit is the live one)."""
    if not config_only:
        validate.ref(ref)
    if not title.strip():
        raise ValidationError(said("title: required"))
    project, config = await asyncio.to_thread(
        projects.project_config, db, actor, project_ref, "ticket.create"
    )
    config.environment(env)
    chosen = deploys.select_hosts(config, env, hosts)
    if config_only:
        with db.read() as s:
            ref, commit, _release = deploys.live_release(s, project, config, env, chosen)
    else:
        space = await asyncio.to_thread(space_access, db, settings, project.space_id)
        commit = (await repos.resolve(settings, config, env, ref, space=space)).commit

    def insert() -> dict[str, Any]:
        with db.transaction() as s:
            return insert_ticket(
                s,
                actor,
                project.id,
                config,
                env,
                ref,
                commit,
                chosen,
                title=title,
                description=description,
                not_before=not_before,
                draft=draft,
                config_only=config_only,
                promoted_from=promoted_from,
            )

    return await asyncio.to_thread(insert)


def insert_ticket(
    s: Session,
    actor: Actor,
    project_id: int,
    config: ProjectConfig,
    env: str,
    ref: str,
    commit: str,
    chosen: list[str] | None,
    *,
    title: str,
    description: str = "",
    not_before: datetime | None = None,
    draft: bool = False,
    config_only: bool = False,
    promoted_from: int | None = None,
) -> dict[str, Any]:
    """The ticket ``create_ticket`` stores once ``ref`` is resolved to ``commit``, inside the
    caller's transaction ``s`` (a release request stores its settings in the same one)."""
    fresh = projects.find_project(s, actor, project_id, "ticket.create")
    kind = "config" if config_only else "deploy"
    promotion.require_passed(s, fresh, config, env, kind, commit)
    ticket = Ticket(
        space_id=fresh.space_id,
        project_id=fresh.id,
        env=env,
        kind=kind,
        ref=ref,
        commit=commit,
        hosts=chosen,
        title=title.strip(),
        description=description,
        not_before=not_before,
        status=_first_state(s, fresh, env, draft, chosen),
        created_by=actor.id,
        created_by_name=actor.username,
    )
    s.add(ticket)
    s.flush()
    # Read again under the project's row lock: a deletion committed since ``find_project``
    # read it is refused here (the insert's foreign key let it through: the row is kept).
    # The insert's foreign key check took that same shared lock on the project's row, so it
    # is the first row this transaction locks (the order of project_locks.py: the new ticket
    # is nobody else's yet), and a deletion that comes later waits and cancels this ticket.
    fresh = lock_live_project(s, fresh)
    extra = {"promoted_from": promoted_from} if promoted_from else {}
    _audit(s, actor, "ticket.create", ticket, ref=ref, commit=commit, env=env, **extra)
    if ticket.status == TicketStatus.PENDING_APPROVAL:
        notifications.ticket_event(s, "ticket.submitted", ticket, actor)
    return ticket_dict(ticket, fresh)


def _own_or_master(s: Session, actor: Actor, ticket: Ticket, project: Project) -> None:
    """Creators act on their own tickets; masters (approvers) on anyone's."""
    if actor.id is not None and actor.id == ticket.created_by:
        return
    require(s, actor, "ticket.approve", project=project, what=f"ticket #{ticket.id}")


def submit_ticket(db: Database, actor: Actor, ticket_id: int) -> dict[str, Any]:
    with db.transaction() as s:
        ticket, project = _load(s, actor, ticket_id, "ticket.create", lock=True)
        _own_or_master(s, actor, ticket, project)
        states.check_transition(ticket.id, ticket.status, TicketStatus.PENDING_APPROVAL)
        _move(s, ticket, _first_state(s, project, ticket.env, False, ticket.hosts))
        _audit(s, actor, "ticket.submit", ticket)
        if ticket.status == TicketStatus.PENDING_APPROVAL:
            notifications.ticket_event(s, "ticket.submitted", ticket, actor)
        return ticket_dict(ticket, project)


def approve_ticket(db: Database, actor: Actor, ticket_id: int, comment: str = "") -> dict[str, Any]:
    with db.transaction() as s:
        ticket, project = _load(s, actor, ticket_id, "ticket.approve", lock=True)
        own = actor.id is not None and actor.id == ticket.created_by
        if own:
            approval.check_self_approval(s, actor, ticket, comment)
            comment = f"self-approved: {comment.strip()}"
        _move(s, ticket, TicketStatus.APPROVED)
        ticket.reviewed_by_name = actor.username
        ticket.review_comment = comment
        ticket.reviewed_at = utcnow()
        config = projects.effective_config(s, project)
        ticket.approved_digest = approval.ticket_digest(s, project, config, ticket)
        _audit(s, actor, "ticket.approve", ticket, comment=comment, self_approved=own)
        notifications.ticket_event(s, "ticket.approved", ticket, actor, comment)
        return ticket_dict(ticket, project)


def reject_ticket(db: Database, actor: Actor, ticket_id: int, reason: str) -> dict[str, Any]:
    if not reason.strip():
        raise ValidationError(said("reason: a rejection needs a reason"))
    with db.transaction() as s:
        ticket, project = _load(s, actor, ticket_id, "ticket.approve", lock=True)
        if actor.id is not None and actor.id == ticket.created_by:
            raise OwnTicket(said("you created ticket #%(id)s; cancel it instead", id=ticket.id))
        _move(s, ticket, TicketStatus.REJECTED)
        ticket.reviewed_by_name = actor.username
        ticket.review_comment = reason
        ticket.reviewed_at = utcnow()
        _audit(s, actor, "ticket.reject", ticket, reason=reason)
        notifications.ticket_event(s, "ticket.rejected", ticket, actor, reason)
        return ticket_dict(ticket, project)


def _queue(
    s: Session, actor: Actor, ticket: Ticket, project: Project, schedule: bool = False
) -> Deploy:
    closed = release_request.window_closed(ticket.request, utcnow())
    if closed:  # a release request's time window (POST /api/v1/project)
        raise Conflict(
            f"ticket #{ticket.id}'s time window closed at {closed}; change the window "
            f"(PUT /api/v1/project/{ticket.id}) or cancel it"
        )
    start = ticket.not_before
    early = start is not None and utcnow() < start
    if start is not None and early and not schedule:
        raise TooEarly(
            said(
                "ticket #%(id)s is scheduled for %(when)s; it cannot start earlier (deploy "
                "with schedule to queue it for then)",
                id=ticket.id,
                when=start.isoformat(),
            ),
            not_before=start.isoformat(),
        )
    _move(s, ticket, TicketStatus.QUEUED)
    if ticket.kind == "rollback":
        deploy = deploys.create_deploy(
            s,
            actor,
            project,
            ticket.env,
            kind="rollback",
            target_release=ticket.target_release,
            ticket_id=ticket.id,
        )
    else:
        deploy = deploys.create_deploy(
            s,
            actor,
            project,
            ticket.env,
            kind=ticket.kind,
            ref=ticket.ref,
            commit=ticket.commit,
            hosts=ticket.hosts,
            ticket_id=ticket.id,
            not_before=start if early else None,
        )
    ticket.deploy_id = deploy.id
    return deploy


# a ticket whose deploy runs what was approved earlier: its approval may have gone stale
RERUNS = (TicketStatus.APPROVED, TicketStatus.FAILED)


@retries_lost_races
def deploy_ticket(
    db: Database, actor: Actor, ticket_id: int, schedule: bool = False
) -> dict[str, Any]:
    """Queue the deploy of an approved ticket (its pinned commit, its hosts). Before its
    ``not_before`` this is refused, unless ``schedule``: then it is queued to start then."""
    with db.transaction() as s:
        ticket, project = _load(s, actor, ticket_id, "ticket.deploy")
        rerun = ticket.status in RERUNS
        why = stale_approval(s, ticket, project) if rerun else ""
    if why:
        _refuse_stale(db, actor, ticket_id, why)
    with db.transaction() as s:
        ticket, project = _load(s, actor, ticket_id, "ticket.deploy", lock=True)
        if ticket.status in RERUNS and stale_approval(s, ticket, project):
            raise Conflict(f"ticket #{ticket_id} changed while it was being deployed; try again")
        deploy = _queue(s, actor, ticket, project, schedule)
        _audit(s, actor, "ticket.deploy", ticket, deploy_id=deploy.id)
        return ticket_dict(ticket, project)


def cancel_ticket(db: Database, actor: Actor, ticket_id: int, reason: str = "") -> dict[str, Any]:
    with db.transaction() as s:
        ticket, project = _load(s, actor, ticket_id, "ticket.create", lock=True)
        _own_or_master(s, actor, ticket, project)
        states.check_transition(ticket.id, ticket.status, TicketStatus.CANCELLED)
        deploy = s.get(Deploy, ticket.deploy_id) if ticket.deploy_id is not None else None
        if ticket.status == TicketStatus.RUNNING and deploy is not None:
            # the worker stops at its next safe point; the ticket follows the deploy
            deploy.cancel_reason = f"ticket #{ticket.id} cancelled by {actor.username}"[:500]
            _audit(s, actor, "ticket.cancel", ticket, reason=reason, running=True)
            return ticket_dict(ticket, project)
        if ticket.status == TicketStatus.QUEUED and deploy is not None:
            queue.cancel_queued(s, deploy)
        _move(s, ticket, TicketStatus.CANCELLED)
        _audit(s, actor, "ticket.cancel", ticket, reason=reason)
        return ticket_dict(ticket, project)


@retries_lost_races
def rollback_ticket(
    db: Database, actor: Actor, ticket_id: int, title: str = "", to: str | None = None
) -> dict[str, Any]:
    """A rollback ticket linked to ``ticket_id``: back to the release its deploy replaced (or
    ``to``, checked as a release name now). Masters may roll back without approval; it is
    queued at once."""
    if to:
        validate.release(to, "to")
    with db.transaction() as s:
        original, project = _load(s, actor, ticket_id, "ticket.rollback")
        if original.kind not in ("deploy", "config") or original.deploy_id is None:
            raise Conflict(
                said("ticket #%(id)s has not deployed anything to roll back", id=original.id)
            )
        target = to or _release_before(s, original)
        # the project's row first (project_locks.py), then the rows made for it: a deletion
        # committed since the read above refuses this; one that starts now waits for it
        project = lock_live_project(s, project)
        ticket = Ticket(
            space_id=original.space_id,
            project_id=original.project_id,
            env=original.env,
            kind="rollback",
            target_release=target,
            hosts=None,
            title=title.strip() or f"Roll back #{original.id}: {original.title}"[:200],
            status=TicketStatus.APPROVED,
            rollback_of=original.id,
            created_by=actor.id,
            created_by_name=actor.username,
            reviewed_by_name=actor.username,
            review_comment="rollback: no approval needed",
            reviewed_at=utcnow(),
        )
        s.add(ticket)
        s.flush()
        deploy = _queue(s, actor, ticket, project)
        _audit(s, actor, "ticket.rollback", ticket, rollback_of=original.id, deploy_id=deploy.id)
        return ticket_dict(ticket, project)


def _release_before(s: Session, ticket: Ticket) -> str:
    previous = {
        h.previous_release
        for h in s.scalars(select(DeployHost).where(DeployHost.deploy_id == ticket.deploy_id))
    }
    previous.discard("")
    if len(previous) != 1:
        raise Conflict(
            f"ticket #{ticket.id}'s hosts were on "
            + (f"different releases ({', '.join(sorted(previous))})" if previous else "no release")
            + " before it; give the release to roll back to",
        )
    return previous.pop()


def get_ticket(db: Database, actor: Actor, ticket_id: int) -> dict[str, Any]:
    with db.read() as s:
        ticket, project = _load(s, actor, ticket_id, "ticket.read")
        out = ticket_dict(ticket, project)
        role = project_role(s, actor, project)
        out["your_role"] = "super" if actor.is_superuser else (role.name if role else None)
        return out


def list_tickets(
    db: Database,
    actor: Actor,
    *,
    space: int | str | None = None,
    project: int | str | None = None,
    status: str | None = None,
    limit: int = 50,
    env: str | None = None,
    user: str | None = None,
    since: datetime | None = None,
    before: int | None = None,
) -> list[dict[str, Any]]:
    """Newest first; ``user`` is who created it, ``since`` when, ``before`` an id cursor."""
    with db.read() as s:
        stmt = _ticket_query(s, actor, select(Ticket, Project), space, project, status)
        stmt = _narrowed(stmt, env, user, since, before).order_by(Ticket.id.desc()).limit(limit)
        return [ticket_dict(t, p) for t, p in s.execute(stmt).all()]


def count_tickets(
    db: Database,
    actor: Actor,
    *,
    space: int | str | None = None,
    project: int | str | None = None,
    status: str | None = None,
    env: str | None = None,
    user: str | None = None,
    since: datetime | None = None,
) -> int:
    """How many tickets ``list_tickets`` pages through with the same filters."""
    with db.read() as s:
        query = select(func.count()).select_from(Ticket)
        stmt = _ticket_query(s, actor, query, space, project, status)
        return int(s.scalar(_narrowed(stmt, env, user, since, None)) or 0)


def _ticket_query(
    s: Session,
    actor: Actor,
    stmt: Any,
    space: int | str | None,
    project: int | str | None,
    status: str | None,
) -> Any:
    from ferryman.services.spaces import visible_space

    stmt = stmt.join(Project, Project.id == Ticket.project_id)
    if project is not None:
        stmt = stmt.where(
            Ticket.project_id == projects.find_project(s, actor, project, "ticket.read").id
        )
    elif space is not None:
        stmt = stmt.where(Ticket.space_id == visible_space(s, actor, space, "ticket.read").id)
    else:
        ids = visible_space_ids(s, actor)
        if ids is not None:
            stmt = stmt.where(Ticket.space_id.in_(ids))
    if status is not None:
        if status not in states.STATES:
            raise ValidationError(f"status: one of {', '.join(states.STATES)}")
        stmt = stmt.where(Ticket.status == status)
    return stmt


def _narrowed(
    stmt: Any, env: str | None, user: str | None, since: datetime | None, before: int | None
) -> Any:
    if env is not None:
        stmt = stmt.where(Ticket.env == env)
    if user is not None:
        stmt = stmt.where(Ticket.created_by_name == user)
    if since is not None:
        stmt = stmt.where(Ticket.created_at >= since)
    if before is not None:
        stmt = stmt.where(Ticket.id < before)
    return stmt


async def preview(db: Database, settings: Settings, actor: Actor, ticket_id: int) -> dict[str, Any]:
    """What approving would ship: the exact hosts, what each runs now, and the commits and
    changed files between that and the ticket's commit."""

    def facts() -> tuple[Ticket, Any, list[str], dict[str, tuple[str, str]], list[Any]]:
        with db.read() as s:
            ticket, project = _load(s, actor, ticket_id, "ticket.read")
            config = projects.effective_config(s, project)
            hosts = ticket.hosts or [h.key for h in config.environment(ticket.env).hosts]
            live = {}
            shipped: dict[str, set[int | None]] = {}
            states_rows = s.scalars(
                select(HostState).where(
                    HostState.project_id == project.id, HostState.env == ticket.env
                )
            ).all()
            for row in states_rows:
                origin = s.get(Deploy, row.deploy_id) if row.deploy_id else None
                for path, version in ((origin.config_versions if origin else None) or {}).items():
                    shipped.setdefault(path, set()).add(version)
            config_rows = []
            for item in config_views(s, project, ticket.env):
                versions = shipped.pop(item["path"], set()) or {None}
                config_rows.append({**item, "live_versions": sorted(versions, key=str)})
            config_rows += [
                {"path": p, "version": None, "live_versions": sorted(v, key=str)}
                for p, v in shipped.items()
            ]
            for row in s.scalars(
                select(HostState).where(
                    HostState.project_id == project.id, HostState.env == ticket.env
                )
            ):
                commit = s.scalar(
                    select(Release.commit).where(
                        Release.project_id == project.id,
                        Release.env == ticket.env,
                        Release.host == row.host,
                        Release.name == row.current_release,
                    )
                )
                live[row.host] = (row.current_release, commit or "")
            return ticket, config, hosts, live, config_rows

    ticket, config, hosts, live, config_rows = await asyncio.to_thread(facts)
    host_rows = [
        {"host": h, "release": live.get(h, ("", ""))[0] or None, "commit": live.get(h, ("", ""))[1]}
        for h in hosts
    ]
    out: dict[str, Any] = {
        "ticket_id": ticket.id,
        "kind": ticket.kind,
        "env": ticket.env,
        "hosts": host_rows,
        "target": ticket.commit or ticket.target_release,
        "changes": [],
        "config": [],
    }
    from ferryman.services.migrations import ticket_preview

    out["migrations"] = await asyncio.to_thread(
        ticket_preview,
        db,
        ticket.project_id,
        config,
        ticket.env,
        ticket.kind,
        hosts,
        ticket.target_release,
        ticket.commit,
    )
    if ticket.kind == "rollback":
        return out
    out["config"] = [
        {**row, "changed": row["live_versions"] != [row["version"]]} for row in config_rows
    ]
    if ticket.kind != "deploy":
        return out
    by_commit: dict[str, list[str]] = {}
    for host in hosts:
        by_commit.setdefault(live.get(host, ("", ""))[1], []).append(host)
    space = await asyncio.to_thread(space_access, db, settings, ticket.space_id)
    for old, on_hosts in sorted(by_commit.items()):
        change = await repos.changes(
            settings, config, ticket.env, ticket.ref, old, ticket.commit, space=space
        )
        out["changes"].append(
            {
                "from": old or None,
                "hosts": on_hosts,
                "commits": [c.__dict__ for c in change.commits],
                "files": [{"status": st, "path": p} for st, p in change.files],
                "truncated": change.truncated,
            }
        )
    return out


def timeline(db: Database, actor: Actor, ticket_id: int) -> list[dict[str, Any]]:
    """What happened to a ticket, oldest first: its audit rows (created, approved, deployed…)
    and how each of its deploys ended; readable by whoever may read the ticket."""
    from ferryman.db.models import AuditEntry

    with db.read() as s:
        ticket, _project = _load(s, actor, ticket_id, "ticket.read")
        rows = s.scalars(
            select(AuditEntry)
            .where(AuditEntry.target == f"ticket:{ticket.id}")
            .order_by(AuditEntry.id)
        ).all()
        events = [
            {
                "ts": r.ts.isoformat(),
                "actor": r.actor,
                "action": r.action,
                "comment": r.detail.get("comment") or r.detail.get("reason") or "",
                "deploy_id": r.detail.get("deploy_id"),
            }
            for r in rows
        ]
        for deploy in s.scalars(
            select(Deploy).where(Deploy.ticket_id == ticket.id).order_by(Deploy.id)
        ):
            if deploy.finished_at is not None:
                events.append(
                    {
                        "ts": deploy.finished_at.isoformat(),
                        "actor": "ferryman",
                        "action": f"{deploy.kind}.{deploy.status}",
                        "comment": (deploy.error or {}).get("message", ""),
                        "deploy_id": deploy.id,
                    }
                )
    return sorted(events, key=lambda e: e["ts"])
