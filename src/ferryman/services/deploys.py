"""Deploys and rollbacks: requesting them, and every record the worker keeps while running one."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ferryman.config.project import ProjectConfig, dump_project
from ferryman.db.models import (
    Deploy,
    Environment,
    HostState,
    Project,
    Release,
    Ticket,
    utcnow,
)
from ferryman.db.outage import retries_lost_races
from ferryman.db.session import Database
from ferryman.domain import validate
from ferryman.domain.statuses import DEPLOY_ACTIVE, DEPLOY_FINISHED, DeployStatus, TicketStatus
from ferryman.errors import (
    ApprovalRequired,
    ApprovalStale,
    ConfigError,
    Conflict,
    NotFound,
    ValidationError,
)
from ferryman.observability.logs import deploy_event
from ferryman.said import said
from ferryman.services import config_files, promotion, rollouts, watch
from ferryman.services.audit import Actor, record
from ferryman.services.project_locks import lock_live_project, lock_project_shared
from ferryman.services.queue import cancel_queued, record_outcome, sync_ticket

ACTIVE = DEPLOY_ACTIVE
FINISHED = DEPLOY_FINISHED


def _refuse_if_active(s: Session, project: Project, env: str) -> None:
    """The friendly early refusal; the unique ``active_key`` is what makes it hold under
    concurrency (``_insert_active``)."""
    active = s.scalar(
        select(Deploy)
        .where(Deploy.project_id == project.id, Deploy.env == env, Deploy.status.in_(ACTIVE))
        .order_by(Deploy.id)
    )
    if active is not None:
        raise _busy(project, env, active)


def _busy(project: Project, env: str, active: Deploy) -> Conflict:
    return Conflict(
        said(
            "%(project)s %(env)s is busy: %(kind)s #%(id)s by %(who)s is %(status)s",
            project=project.name,
            env=env,
            kind=active.kind,
            id=active.id,
            who=active.requested_by_name,
            status=active.status,
        ),
        deploy_id=active.id,
        holder=active.requested_by_name,
    )


def active_key(project_id: int, env: str) -> str:
    """``deploys.active_key`` of an active deploy of ``env`` (unique: one at a time)."""
    return f"{project_id}:{env}"


_INSERT_ATTEMPTS = 5


def _insert_active(s: Session, project: Project, env: str, values: dict[str, Any]) -> Deploy:
    """Insert a deploy holding ``active_key`` of its environment, or raise the same busy
    ``Conflict`` as ``_refuse_if_active`` naming the holder — also when another request
    inserted one a moment ago: the unique index decides, the insert runs in a savepoint so
    the loser's transaction goes on to read the winner (a locking read: MariaDB's snapshot
    would not show it) and report it. A key left on a deploy that already ended (a path
    that set its status without clearing it) is cleared and the insert tried again."""
    key = active_key(project.id, env)
    sqlite = s.get_bind().dialect.name == "sqlite"
    failure: IntegrityError | None = None
    for _ in range(_INSERT_ATTEMPTS):
        if sqlite:
            # A write first: it takes SQLite's one write lock (concurrent requests queue
            # here and the check below sees the winner's commit), and pysqlite only BEGINs
            # before a write: a SAVEPOINT that began the transaction would commit it.
            s.execute(
                update(Deploy)
                .where(Deploy.active_key == key, Deploy.status.not_in(ACTIVE))
                .values(active_key=None)
            )
            _refuse_if_active(s, project, env)
        deploy = Deploy(**values, active_key=key)
        try:
            with s.begin_nested():
                s.add(deploy)
                s.flush()
            return deploy
        except IntegrityError as exc:
            failure = exc
        holder = s.scalar(
            select(Deploy)
            .where(Deploy.active_key == key)
            .with_for_update(read=True)
            .execution_options(populate_existing=True)
        )
        if holder is None:
            continue  # it ended between our insert and this read
        if holder.status in ACTIVE:
            raise _busy(project, env, holder)
        holder.active_key = None  # stale: that deploy ended without clearing it
        s.flush()
    raise Conflict(  # each try lost a race with another request: never a raw IntegrityError
        f"{project.name} {env} is busy: other deploys kept taking it; try again"
    ) from failure


def claim_priority(kind: str, options: dict[str, Any] | None) -> int:
    """Workers claim emergency rollbacks first, then rollbacks, then everything else."""
    if kind == "rollback":
        return 0 if (options or {}).get("emergency") else 10
    return 100


def select_hosts(config: ProjectConfig, env: str, hosts: Sequence[str] | None) -> list[str] | None:
    """The chosen subset as host keys (``None``: every host), each checked against the env."""
    if not hosts:
        return None
    known = {h.key: h for h in config.environment(env).hosts}
    chosen = []
    for raw in hosts:
        key = validate.host(raw).key
        if key not in known:
            raise ValidationError(
                said(
                    "host %(host)s is not in %(project)s %(env)s",
                    host=repr(raw),
                    project=config.project,
                    env=env,
                )
            )
        if key not in chosen:
            chosen.append(key)
    return chosen


def space_environment(s: Session, project: Project, env: str) -> Environment:
    row = s.scalar(
        select(Environment).where(Environment.space_id == project.space_id, Environment.name == env)
    )
    if row is None:
        raise NotFound(
            said(
                "the space of %(project)s has no environment %(env)s",
                project=project.name,
                env=repr(env),
            )
        )
    return row


def create_deploy(
    s: Session,
    actor: Actor,
    project: Project,
    env: str,
    *,
    kind: str,
    ref: str = "",
    commit: str = "",
    target_release: str = "",
    hosts: Sequence[str] | None = None,
    ticket_id: int | None = None,
    not_before: datetime | None = None,
    options: dict[str, Any] | None = None,
) -> Deploy:
    """Queue a deploy, config-only deploy or rollback (the caller has authorised it). The
    config is snapshotted with servers and labels expanded, and so are the config files (still
    sealed), so the worker runs exactly what was asked; with ``not_before`` no worker claims it
    before that time. A config-only deploy (``kind="config"``) ships the live release again
    with the current config files: its commit and base are the release the hosts are on."""
    from ferryman.services.projects import effective_config

    # the project's row locked shared and read again before anything is inserted for it
    # (the lock order: project_locks.py): deleted meanwhile, nothing deploys it (a retry, a
    # ticket, a watch's rollback); a deletion that starts now waits and sees this deploy
    project = lock_live_project(s, project)
    config = effective_config(s, project)
    config.environment(env)
    chosen = select_hosts(config, env, hosts)
    from ferryman.services.secrets import sealed_for

    environment = space_environment(s, project, env)
    project_secrets = sealed_for(s, project.id, env)  # encrypted; opened by the worker
    missing = [
        n
        for n in config.environment(env).secrets
        if n not in project_secrets and n not in space_environment(s, project, env).variables
    ]
    if missing:
        raise ConfigError(
            f"{project.name} {env} needs secrets that are not set: {', '.join(missing)} "
            f"(`ferryman secret set {project.name} NAME --env {env}`)",
            [f"environments/{env}/secrets: {n} is not set" for n in missing],
        )
    bundle, config_versions = "", dict[str, int]()
    if kind != "rollback":
        bundle, config_versions = config_files.bundle_for(s, project, config, env)
    if kind == "config":
        ref, commit, target_release = live_release(s, project, config, env, chosen)
    plan = None
    if not (options or {}).get("emergency"):
        plan = rollouts.plan_for(s, project, config, env, chosen)
    promotion.require_passed(s, project, config, env, kind, commit)
    variables = {**environment.variables, **project_secrets}
    secrets = [*(environment.secrets or []), *project_secrets]
    _refuse_if_active(s, project, env)
    if (
        kind == "rollback"
        and not s.scalars(
            select(HostState).where(HostState.project_id == project.id, HostState.env == env)
        ).first()
    ):
        raise Conflict(
            said(
                "%(project)s %(env)s has never been deployed; nothing to roll back",
                project=project.name,
                env=env,
            )
        )
    if kind == "rollback":  # never across an irreversible migration unless a master forces it
        from ferryman.services.migrations import guard_rollback

        checked = guard_rollback(s, actor, project, config, env, chosen, target_release, options)
        options = {**(options or {}), **checked} or None
    values: dict[str, Any] = dict(
        project_id=project.id,
        env=env,
        kind=kind,
        ref=ref,
        commit=commit,
        target_release=target_release,
        hosts=chosen,
        ticket_id=ticket_id,
        not_before=not_before,
        queue=config.environment(env).queue,
        variables=dict(variables),
        secret_names=[n for n in secrets if n in variables],
        requested_by=actor.id,
        requested_by_name=actor.username,
        config=dump_project(config),
        config_bundle=bundle,
        config_versions=config_versions or None,
        rollout=plan,
        options=options or None,
        stages=[],
        priority=claim_priority(kind, options),
    )
    deploy = _insert_active(s, project, env, values)
    watch.end_for_env(s, project.id, env, f"{kind} #{deploy.id} requested")
    record(
        s,
        actor,
        f"{kind}.request",
        f"project:{project.name}/{env}",
        space_id=project.space_id,
        project_id=project.id,
        deploy_id=deploy.id,
        ref=ref,
        to=target_release or None,
        hosts=chosen,
        ticket_id=ticket_id,
        not_before=not_before.isoformat() if not_before else None,
    )
    _log_once_committed(s, deploy, project, actor)
    return deploy


def _log_once_committed(s: Session, deploy: Deploy, project: Project, actor: Actor) -> None:
    """The ``queued`` lifecycle event, logged when (and only if) the request commits."""
    deploy_id, kind, env, name = deploy.id, deploy.kind, deploy.env, project.name
    who = actor.username

    def committed(_session: Session) -> None:
        deploy_event(
            "queued",
            deploy_id,
            f"{kind} #{deploy_id} of {name} {env} queued by {who}",
            kind=kind,
            project=name,
            env=env,
        )

    event.listen(s, "after_commit", committed, once=True)


def live_release(
    s: Session, project: Project, config: ProjectConfig, env: str, chosen: list[str] | None
) -> tuple[str, str, str]:
    """(ref, commit, release) every chosen host is on, for a config-only deploy."""
    hosts = chosen or [h.key for h in config.environment(env).hosts]
    live = {
        row.host: row.current_release
        for row in s.scalars(
            select(HostState).where(HostState.project_id == project.id, HostState.env == env)
        )
    }
    releases = {live.get(h, "") for h in hosts}
    if "" in releases:
        bare = [h for h in hosts if not live.get(h)]
        raise Conflict(
            f"{', '.join(bare)} of {project.name} {env} has no release yet; a config-only "
            "deploy ships the live release again, so deploy a commit first"
        )
    if len(releases) > 1:
        raise Conflict(
            f"the hosts of {project.name} {env} are on different releases "
            f"({', '.join(sorted(releases))}); deploy a commit, or choose hosts on one release"
        )
    name = releases.pop()
    row = s.scalar(
        select(Release).where(
            Release.project_id == project.id,
            Release.env == env,
            Release.host == hosts[0],
            Release.name == name,
        )
    )
    origin = s.get(Deploy, row.deploy_id) if row is not None else None
    return (origin.ref if origin else ""), (row.commit if row else ""), name


def _refuse_without_ticket(
    s: Session, project: Project, env: str, hosts: Sequence[str] | None, how: str
) -> None:
    """A deploy without a ticket is refused when ``env`` needs approval, or when any server
    it touches serves an environment that does (approval follows the servers). The refusal
    names the ticket to create as a command that runs as written (``how``: its ``--ref REF``
    or ``--config-only``; a title is made up)."""
    from ferryman.services.approval import approving_environments, describe
    from ferryman.services.projects import effective_config

    config = effective_config(s, project)
    chosen = select_hosts(config, env, hosts)
    needed = approving_environments(s, project, config, env, chosen)
    if needed:
        what = how.split()[-1] if how.startswith("--ref ") else "config files"
        title = shlex.quote(f"{what} to {env}")
        hint = (
            f" (`ferryman ticket create {project.name} --env {env}"
            f"{' ' + how if how else ''}"
            f"{' --hosts ' + shlex.quote(','.join(hosts)) if hosts else ''} --title {title}`)"
        )
        raise ApprovalRequired(
            f"{describe(needed, env)}: create a ticket{hint}", env=env, approval=needed
        )


@retries_lost_races
def request_config_deploy(
    db: Database,
    actor: Actor,
    project_ref: int | str,
    env: str,
    hosts: Sequence[str] | None = None,
) -> Deploy:
    """A new release of what the hosts run now with the current config files: no checkout,
    no build. Where the environment needs approval, a ticket (``config_only``) is the way."""
    from ferryman.services.projects import find_project

    with db.transaction() as s:
        project = find_project(s, actor, project_ref, "deploy.direct")
        _refuse_without_ticket(s, project, env, hosts, "--config-only")
        return create_deploy(s, actor, project, env, kind="config", hosts=hosts)


@retries_lost_races
def request_deploy(
    db: Database,
    actor: Actor,
    project_ref: int | str,
    env: str,
    ref: str,
    hosts: Sequence[str] | None = None,
    not_before: datetime | None = None,
    commit: str = "",
) -> Deploy:
    """A deploy without a ticket: only where the environment needs no approval. With
    ``not_before`` it waits in the queue until then (a scheduled deploy); with ``commit``
    (``promotion.pinned_commit``) exactly that commit of ``ref`` ships."""
    from ferryman.services.projects import find_project

    validate.ref(ref)
    with db.transaction() as s:
        project = find_project(s, actor, project_ref, "deploy.direct")
        _refuse_without_ticket(s, project, env, hosts, f"--ref {ref}")
        return create_deploy(
            s,
            actor,
            project,
            env,
            kind="deploy",
            ref=ref,
            commit=commit,
            hosts=hosts,
            not_before=not_before,
        )


@retries_lost_races
def request_retry(db: Database, actor: Actor, deploy_id: int, failed_only: bool = False) -> Deploy:
    """Deploy a failed (or cancelled) deploy's commit again — to the same hosts, or only to
    those that failed — shipping its kept build when it is still there. A ticket's deploy is
    retried under the same ticket (its approval covers the same commit)."""
    try:
        return _retry(db, actor, deploy_id, failed_only)
    except _Stale as stale:
        from ferryman.services.tickets import back_to_review

        if stale.status == TicketStatus.FAILED:
            back_to_review(db, actor, stale.ticket_id, stale.why)
        raise ApprovalStale(
            f"{stale.why}: ticket #{stale.ticket_id} needs a new approval before a retry",
            ticket_id=stale.ticket_id,
        ) from None


class _Stale(Exception):
    def __init__(self, why: str, ticket_id: int, status: str) -> None:
        super().__init__(why)
        self.why, self.ticket_id, self.status = why, ticket_id, status


def _retry(db: Database, actor: Actor, deploy_id: int, failed_only: bool) -> Deploy:
    from ferryman.domain.tickets import check_transition
    from ferryman.services.authz import hidden, require

    with db.transaction() as s:
        original = s.get(Deploy, deploy_id)
        # the project's row first (project_locks.py): the ticket is written below, before
        # create_deploy locks the project again — in the deletion's order, project then ticket
        project = lock_project_shared(s, original.project_id) if original else None
        if original is None or project is None:
            raise hidden(f"deploy #{deploy_id}")
        ticket = s.get(Ticket, original.ticket_id) if original.ticket_id else None
        if ticket is not None:
            require(s, actor, "ticket.deploy", project=project, what=f"deploy #{deploy_id}")
        else:
            require(s, actor, "deploy.direct", project=project, what=f"deploy #{deploy_id}")
            again = "--config-only" if original.kind == "config" else f"--ref {original.commit}"
            _refuse_without_ticket(s, project, original.env, original.hosts, again)
        # a rollout that ended within max_failed
        partly = original.status == DeployStatus.SUCCESS and failed_only
        if original.kind not in ("deploy", "config") or not (
            original.status in (DeployStatus.FAILED, DeployStatus.CANCELLED) or partly
        ):
            raise Conflict(
                f"deploy #{deploy_id} is a {original.kind} that is {original.status}; "
                "only failed or cancelled deploys are retried (or the failed hosts of a "
                "finished gray release, with failed_only)"
            )
        hosts = original.hosts
        options: dict[str, Any] | None = None
        if failed_only:
            hosts, options = _hosts_to_retry(s, original, project)
        if ticket is not None:
            from ferryman.services.tickets import stale_approval

            why = stale_approval(s, ticket, project)
            if why:
                raise _Stale(why, ticket.id, ticket.status)
        if ticket is not None and not partly:
            check_transition(ticket.id, ticket.status, TicketStatus.QUEUED)
            ticket.status = TicketStatus.QUEUED
            ticket.updated_at = utcnow()
        deploy = create_deploy(
            s,
            actor,
            project,
            original.env,
            kind=original.kind,
            ref=original.ref,
            commit=original.commit,
            hosts=hosts,
            ticket_id=None if partly else original.ticket_id,
            options=options,
        )
        deploy.retry_of = original.id
        if ticket is not None and not partly:
            ticket.deploy_id = deploy.id
        record(
            s,
            actor,
            "deploy.retry",
            f"deploy:{deploy_id}",
            space_id=project.space_id,
            project_id=project.id,
            retry=deploy.id,
            failed_only=failed_only,
            hosts=hosts,
        )
        return deploy


def _hosts_to_retry(
    s: Session, original: Deploy, project: Project
) -> tuple[list[str], dict[str, Any] | None]:
    """``--failed-only``: the hosts of ``original`` that do not serve its release, and the
    option that makes the retry ship that same release name to them — so the environment
    ends on one release. When no host serves it (a failed deploy was undone everywhere),
    shipping to the failed hosts alone would split the fleet: every host is retried."""
    from ferryman.config.project import parse_project

    release = original.release_name
    chosen = original.hosts or [
        h.key for h in parse_project(original.config).environment(original.env).hosts
    ]
    live = {
        row.host: row.current_release
        for row in s.scalars(
            select(HostState).where(
                HostState.project_id == project.id, HostState.env == original.env
            )
        )
    }
    serving = {h for h in chosen if release and live.get(h) == release}
    if not serving:
        return list(chosen), None
    rest = [h for h in chosen if h not in serving]
    if not rest:
        raise Conflict(
            f"every host of deploy #{original.id} already serves {release}: nothing to retry"
        )
    return rest, {"release": release}


@retries_lost_races
def request_rollback(
    db: Database,
    actor: Actor,
    project_ref: int | str,
    env: str,
    to: str | None = None,
    *,
    emergency: bool = False,
    force: bool = False,
    force_migrations: bool = False,
    reason: str = "",
) -> Deploy:
    """Back to the previous release (from the records, never a bad one unless ``force``) or
    ``to``. ``emergency``: the link switch only, every host at once, no hooks, no batches.
    Across an irreversible database migration only with ``force_migrations`` and a
    ``reason``, by a master (``services/migrations.py``)."""
    from ferryman.services.migrations import check_reason
    from ferryman.services.projects import find_project

    if to is not None:
        validate.release(to, "to")
    reason = check_reason(force_migrations, reason)
    with db.transaction() as s:
        project = find_project(
            s, actor, project_ref, "deploy.emergency" if emergency else "deploy.rollback"
        )
        if to and not force and to in rollouts.bad_releases(db, project.id, env):
            raise Conflict(
                said(
                    "%(release)s is marked bad (its rollout aborted); roll back to it with force",
                    release=to,
                )
            )
        options: dict[str, Any] = {
            k: True
            for k, v in (
                ("emergency", emergency),
                ("force", force),
                ("force_migrations", force_migrations),
            )
            if v
        }
        if reason:
            options["force_migrations_reason"] = reason
        return create_deploy(
            s,
            actor,
            project,
            env,
            kind="rollback",
            target_release=to or "",
            options=options or None,
        )


# --- the worker's side -------------------------------------------------------------------


def request_cancel(db: Database, actor: Actor, deploy_id: int, reason: str = "") -> Deploy:
    """Stop a deploy: a queued one never starts; a running one stops at its next safe point
    (before the switch nothing is switched; after it, switched hosts go back)."""
    from ferryman.services.authz import hidden, require

    with db.transaction() as s:
        deploy = s.get(Deploy, deploy_id)
        project = s.get(Project, deploy.project_id) if deploy else None
        if deploy is None or project is None:
            raise hidden(f"deploy #{deploy_id}")
        own = actor.id is not None and actor.id == deploy.requested_by
        action = "deploy.cancel" if own else "deploy.cancel_any"
        require(s, actor, action, project=project, what=f"deploy #{deploy_id}")
        why = f"cancelled by {actor.username}" + (f": {reason}" if reason else "")
        if deploy.status == DeployStatus.QUEUED:
            cancel_queued(s, deploy)
            sync_ticket(s, deploy)
        elif deploy.status == DeployStatus.RUNNING:
            deploy.cancel_reason = why[:500]
        else:
            raise Conflict(f"deploy #{deploy_id} is {deploy.status}; nothing to cancel")
        record(
            s,
            actor,
            f"{deploy.kind}.cancel",
            f"deploy:{deploy_id}",
            space_id=project.space_id,
            project_id=project.id,
            was=deploy.status,
            reason=reason,
        )
        return deploy


def load(db: Database, deploy_id: int) -> tuple[Deploy, Project]:
    with db.read() as s:
        deploy = s.get(Deploy, deploy_id)
        if deploy is None:
            raise NotFound(f"no deploy #{deploy_id}")
        project = s.get(Project, deploy.project_id)
        if project is None:  # deleted meanwhile: its deploys with it
            raise NotFound(f"no deploy #{deploy_id}")
        return deploy, project


def finish(db: Database, deploy_id: int, status: str, error: dict[str, Any] | None) -> None:
    """Write a deploy's outcome whoever runs it (recovery, tests); a worker running it
    writes through ``queue.finish_if_held``."""
    with db.transaction() as s:
        deploy = s.get(Deploy, deploy_id)
        if deploy is None:
            raise NotFound(f"no deploy #{deploy_id}")
        deploy.finished_at = utcnow()
        record_outcome(s, deploy, status, error)
