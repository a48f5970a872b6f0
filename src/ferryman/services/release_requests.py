"""Release requests, the pull-mode platform's ``/api/v1/project``: one request names a
project environment, a version and what the release needs (dependencies, the CI build, the
unit tests, start and stop commands, a time window, hosts). It becomes a ticket (上线单) and,
where it asks for settings the environment does not have yet, a change of the project's
configuration — as ``ferryman apply`` would make it, so changing what runs needs a master
(``project.manage``) and is audited like any apply; a developer's request that only asks for a
release is a ticket like any other. ``domain/release_request.py`` holds the mapping.

A request is the ticket it made (same id); the request as asked is kept on it
(``tickets.request``)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from ferryman.config.project import ProjectConfig, dump_project, parse_project
from ferryman.config.settings import Settings
from ferryman.db.models import Project, Ticket, utcnow
from ferryman.db.session import Database
from ferryman.domain import release_request as rules
from ferryman.domain import tickets as states
from ferryman.domain import validate
from ferryman.errors import Conflict, NotFound, PermissionDenied, ValidationError
from ferryman.services import approval, deploys, projects, repos, tickets
from ferryman.services.audit import Actor, record
from ferryman.services.authz import project_role, require
from ferryman.services.space_access import space_access

CHANGEABLE = (states.DRAFT, states.PENDING, states.APPROVED)  # not yet queued


def _asked(fields: dict[str, Any]) -> dict[str, Any]:
    """The settings a request names (``None``: unchanged), validated."""
    out: dict[str, Any] = {}
    for key in rules.COMMANDS:
        value = fields.get(key)
        out[key] = None if value is None else rules.command(value, key)
    deps = fields.get("dependencies")
    out["dependencies"] = None if deps is None else list(dict.fromkeys(deps))
    return out


def _hosts(
    effective: ProjectConfig, env: str, hosts: Sequence[str] | None
) -> tuple[list[str] | None, list[str]]:
    """(the chosen hosts as keys or None for all, the ones the environment does not have)."""
    if not hosts:
        return None, []
    known = {h.key for h in effective.environment(env).hosts}
    chosen: list[str] = []
    for raw in hosts:
        key = validate.host(raw).key
        if key not in chosen:
            chosen.append(key)
    return chosen, [h for h in chosen if h not in known]


def _may_change_settings(db: Database, actor: Actor, project: Project, env: str) -> None:
    with db.read() as s:
        try:
            require(s, actor, "project.manage", project=project)
        except PermissionDenied:
            raise PermissionDenied(
                f"changing what {project.name} {env} runs (dependencies, commands, hosts) "
                "needs a master of its space; send the request without them, or ask a master"
            ) from None


async def _settings(
    db: Database,
    actor: Actor,
    project: Project,
    env: str,
    fields: dict[str, Any],
    hosts: Sequence[str] | None,
    kept: bool = False,
) -> tuple[dict[str, Any] | None, list[str] | None, dict[str, Any]]:
    """(the project's new config, or None when unchanged; the chosen hosts; the request's
    settings as they will be) — every check ``apply`` makes done, nothing written.
    ``kept``: ``hosts`` are the ones the request already had (a ``PUT`` that left them out):
    they are never added to the environment again."""
    with db.read() as s:
        effective = projects.effective_config(s, project)
    effective.environment(env)
    current = project.config
    chosen, new_hosts = _hosts(effective, env, hosts)
    if kept and new_hosts:  # taken out of the environment since: a title is no host change
        raise Conflict(
            f"the request's hosts {', '.join(new_hosts)} are no longer in {project.name} "
            f"{env}; send hosts to choose them again"
        )
    wanted = rules.with_settings(current, env, _asked(fields), new_hosts)
    parsed = parse_project(wanted)
    if dump_project(parsed) == current:
        return None, chosen, rules.settings_of(current["environments"][env])
    _may_change_settings(db, actor, project, env)
    await asyncio.to_thread(projects.plan_apply, db, actor, parsed)  # every check, no write
    return wanted, chosen, rules.settings_of(wanted["environments"][env])


def _window(start: datetime | None, end: datetime | None) -> dict[str, str | None]:
    rules.window(start, end)
    if end is not None and end <= utcnow():
        raise ValidationError("window: its end has passed")
    return {
        "start": start.isoformat() if start else None,
        "end": end.isoformat() if end else None,
    }


def _store(
    s: Session,
    actor: Actor,
    ticket: Ticket,
    project: Project,
    request: dict[str, Any],
    action: str,
) -> dict[str, Any]:
    ticket.request = request
    ticket.updated_at = utcnow()
    record(
        s,
        actor,
        action,
        f"ticket:{ticket.id}",
        space_id=ticket.space_id,
        project_id=ticket.project_id,
        env=ticket.env,
        version=ticket.ref,
    )
    return view(s, actor, ticket, project)


async def create(
    db: Database,
    settings: Settings,
    actor: Actor,
    project_ref: int | str,
    env: str,
    version: str,
    fields: dict[str, Any],
    *,
    title: str = "",
    description: str = "",
    hosts: Sequence[str] | None = None,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
) -> dict[str, Any]:
    """A ticket for ``version`` of ``project_ref`` ``env``, after the settings it asks for
    (``fields``: dependencies, build, test, start, stop; ``None`` or absent: unchanged)."""
    validate.ref(version)
    window = _window(window_start, window_end)
    project, config = await asyncio.to_thread(
        projects.project_config, db, actor, project_ref, "ticket.create"
    )
    config.environment(env)
    new_config, chosen, asked = await _settings(db, actor, project, env, fields, hosts)
    space = await asyncio.to_thread(space_access, db, settings, project.space_id)
    commit = (await repos.resolve(settings, config, env, version, space=space)).commit
    parsed = parse_project(new_config) if new_config is not None else None
    request = {**asked, "hosts": chosen, "window": window}

    def write() -> dict[str, Any]:
        # the settings, the ticket and the request together, or nothing at all: a ticket
        # refused here (a promotion gate, say) leaves the project as it was
        with db.transaction() as s:
            now = _settings_in(s, db, actor, project, parsed)
            effective = projects.effective_config(s, now)
            made = tickets.insert_ticket(
                s,
                actor,
                now.id,
                effective,
                env,
                version,
                commit,
                deploys.select_hosts(effective, env, chosen),
                title=title.strip() or f"Release {version}",
                description=description,
                not_before=window_start,
            )
            ticket, _ = _load(s, actor, int(made["id"]), "ticket.create", made=True)
            return _store(s, actor, ticket, now, request, "release_request.create")

    return await asyncio.to_thread(write)


def _locked_project(s: Session, planned: Project) -> Project:
    """The project's row locked and read again, first of every row the transaction locks
    (the lock order, ``docs/architecture.md``: a project's row before its tickets'): an apply
    or a deletion committed after the request's check is seen here, and one that starts now
    waits for this transaction."""
    project = s.get(
        Project, planned.id, with_for_update={"key_share": True}, populate_existing=True
    )  # PostgreSQL: FOR NO KEY UPDATE, so a deploy or ticket made for the project meanwhile
    # (a row that refers to it) does not wait; an apply (an UPDATE of it) does
    if project is None or project.deleted_at is not None:
        raise NotFound(f"no project {planned.name}")
    return project


def _apply_asked(
    s: Session,
    db: Database,
    actor: Actor,
    planned: Project,
    project: Project,
    parsed: ProjectConfig | None,
) -> None:
    """The request's settings (``parsed``; None: none asked) applied to ``project``, locked
    by ``_locked_project`` — refused when its configuration changed since the request was
    checked against it (``planned``), so nobody's apply in between is overwritten."""
    if parsed is not None:
        if project.config != planned.config:
            raise Conflict(f"{planned.name}'s configuration changed meanwhile; send it again")
        projects.apply_in(s, db, actor, parsed)


def _settings_in(
    s: Session, db: Database, actor: Actor, planned: Project, parsed: ProjectConfig | None
) -> Project:
    """The project in ``s``, locked, with the request's settings applied."""
    project = _locked_project(s, planned)
    _apply_asked(s, db, actor, planned, project, parsed)
    return project


def _load(
    s: Session, actor: Actor, ticket_id: int, action: str, made: bool = False, lock: bool = False
) -> tuple[Ticket, Project]:
    """The request's ticket and project (``made``: the ticket just made for it; ``lock``: its
    row locked and read again, for the transaction that changes it — which has locked the
    project's row before, ``_locked_project``)."""
    missing = NotFound(f"no release request #{ticket_id}")
    ticket = (
        s.get(Ticket, ticket_id, with_for_update=True, populate_existing=True)
        if lock
        else s.get(Ticket, ticket_id)
    )
    project = s.get(Project, ticket.project_id) if ticket is not None else None
    if ticket is None or project is None or (ticket.request is None and not made):
        raise missing
    try:
        require(s, actor, action, project=project, what=f"release request #{ticket_id}")
    except NotFound:  # another space's: refused word for word (template too) as a missing one
        raise missing from None
    return ticket, project


def view(s: Session, actor: Actor, ticket: Ticket, project: Project) -> dict[str, Any]:
    role = "super" if actor.is_superuser else project_role(s, actor, project)
    return {
        **tickets.ticket_dict(ticket, project),
        "request": ticket.request,
        "your_role": getattr(role, "name", role),
    }


def get(db: Database, actor: Actor, ticket_id: int) -> dict[str, Any]:
    with db.read() as s:
        ticket, project = _load(s, actor, ticket_id, "ticket.read")
        return view(s, actor, ticket, project)


def _own_or_master(s: Session, actor: Actor, ticket: Ticket, project: Project) -> None:
    if actor.id is not None and actor.id == ticket.created_by:
        return
    require(s, actor, "ticket.approve", project=project, what=f"release request #{ticket.id}")


async def update(
    db: Database,
    settings: Settings,
    actor: Actor,
    ticket_id: int,
    fields: dict[str, Any],
    *,
    version: str | None = None,
    title: str | None = None,
    description: str | None = None,
    hosts: Sequence[str] | None = None,
    window: dict[str, datetime | None] | None = None,
) -> dict[str, Any]:
    """Change a request not yet queued (draft, pending approval, approved): its version,
    settings, hosts, window, title. A request that was approved where approval is needed is
    reviewed again."""

    def load() -> tuple[Ticket, Project]:
        with db.read() as s:
            ticket, project = _load(s, actor, ticket_id, "ticket.create")
            _own_or_master(s, actor, ticket, project)
            s.expunge_all()
            return ticket, project

    ticket, project = await asyncio.to_thread(load)
    if ticket.status not in CHANGEABLE:
        raise Conflict(
            f"release request #{ticket_id} is {ticket.status}; only a request not yet "
            "queued can change (cancel it and send a new one)"
        )
    request = dict(ticket.request or {})
    old_window = request.get("window") or {}
    start = _parsed(old_window.get("start"))
    end = _parsed(old_window.get("end"))
    if window is not None:
        start = window.get("start", start)
        end = window.get("end", end)
    new_window = _window(start, end)
    if version is not None:
        validate.ref(version)
    new_config, chosen, asked = await _settings(
        db,
        actor,
        project,
        ticket.env,
        fields,
        hosts if hosts is not None else ticket.hosts,
        kept=hosts is None,
    )
    commit = ticket.commit
    if version is not None and version != ticket.ref:
        _, config = await asyncio.to_thread(
            projects.project_config, db, actor, project.id, "ticket.create"
        )
        space = await asyncio.to_thread(space_access, db, settings, project.space_id)
        commit = (await repos.resolve(settings, config, ticket.env, version, space=space)).commit
    parsed = parse_project(new_config) if new_config is not None else None

    def write() -> dict[str, Any]:
        with db.transaction() as s:
            # the project's row, then the ticket's, each locked — the one lock order
            # (docs/architecture.md, "Concurrency"; a deletion of the project takes them so):
            # a deletion, an apply, a deploy or an approval meanwhile is seen, not written over
            project_now = _locked_project(s, project)
            fresh, _ = _load(s, actor, ticket_id, "ticket.create", lock=True)
            if fresh.status not in CHANGEABLE or fresh.updated_at != ticket.updated_at:
                raise Conflict(f"release request #{ticket_id} changed meanwhile; try again")
            _apply_asked(s, db, actor, project, project_now, parsed)
            fresh.ref = version if version is not None else fresh.ref
            fresh.commit = commit
            fresh.hosts = chosen
            fresh.not_before = start
            if title is not None and title.strip():
                fresh.title = title.strip()
            if description is not None:
                fresh.description = description
            if fresh.status == states.APPROVED:
                config = projects.effective_config(s, project_now)
                if approval.approving_environments(s, project_now, config, fresh.env, chosen):
                    fresh.status = states.PENDING  # what was approved is not what it asks now
                    fresh.reviewed_by_name = ""
                    fresh.reviewed_at = None
                    fresh.approved_digest = ""
            fresh.request = {**asked, "hosts": chosen, "window": new_window}
            fresh.updated_at = utcnow()
            record(
                s,
                actor,
                "release_request.update",
                f"ticket:{fresh.id}",
                space_id=fresh.space_id,
                project_id=fresh.project_id,
                env=fresh.env,
                version=fresh.ref,
                commit=fresh.commit,
            )
            return view(s, actor, fresh, project_now)

    return await asyncio.to_thread(write)


def _parsed(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def cancel(db: Database, actor: Actor, ticket_id: int, reason: str = "") -> dict[str, Any]:
    """Cancel the request's ticket (a queued deploy is withdrawn, a running one stopped at its
    next safe point) — the rules of ``tickets.cancel_ticket``."""
    with db.read() as s:
        _load(s, actor, ticket_id, "ticket.create")
    tickets.cancel_ticket(db, actor, ticket_id, reason or "release request withdrawn")
    return get(db, actor, ticket_id)
