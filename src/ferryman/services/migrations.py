"""Database migrations per release: the listings deploys record (``migrations:``), what a
rollback would cross, and the guard that refuses crossing an irreversible migration unless a
master forces it with a reason (audited and notified). The rules are ``domain/migrations.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ferryman.commands.migrations import Listing as Parsed
from ferryman.commands.migrations import printable
from ferryman.config.project import ProjectConfig
from ferryman.db.models import Deploy, HostState, Project, Release, ReleaseMigrations
from ferryman.db.session import Database
from ferryman.domain import migrations as rules
from ferryman.domain.release import rollback_target
from ferryman.domain.statuses import DeployStatus, ReleaseState
from ferryman.errors import Conflict, PermissionDenied, ValidationError
from ferryman.services import deploy_records
from ferryman.services.audit import Actor, record
from ferryman.services.authz import require

FORCE = "deploy.force_migrations"
FORCED_EVENT = "rollback.forced"
RECENT = 500  # listings read per environment (plus its oldest)
MAX_REASON = 500


def save_listing(
    db: Database,
    project_id: int,
    env: str,
    deploy_id: int,
    release: str,
    parsed: Parsed | None,
    error: str = "",
    owner: str | None = None,
) -> None:
    """Record what the deploy's ``migrations:`` command listed (``parsed``), or why it could
    not (``error``); fenced by ``owner``."""
    with db.transaction() as s:
        deploy_records.fence(s, deploy_id, owner)
        s.add(
            ReleaseMigrations(
                project_id=project_id,
                env=env,
                deploy_id=deploy_id,
                release=release,
                ok=parsed is not None,
                error=printable(error, 500),
                applied=[[m.version, m.reversible] for m in parsed.applied] if parsed else [],
                rejected=parsed.rejected if parsed else 0,
                truncated=parsed.truncated if parsed else False,
            )
        )


def _as_listing(row: ReleaseMigrations) -> rules.Listing:
    applied = tuple((str(v), bool(r)) for v, r in row.applied or [])
    return rules.Listing(row.deploy_id, row.release, row.ok, applied, row.error)


def listings(s: Session, project_id: int, env: str) -> list[rules.Listing]:
    """The environment's listings, oldest first: its oldest and its newest ``RECENT``."""
    where = (ReleaseMigrations.project_id == project_id, ReleaseMigrations.env == env)
    recent = list(
        s.scalars(
            select(ReleaseMigrations)
            .where(*where)
            .order_by(ReleaseMigrations.id.desc())
            .limit(RECENT)
        )
    )
    recent.reverse()
    oldest = s.scalars(
        select(ReleaseMigrations).where(*where).order_by(ReleaseMigrations.id)
    ).first()
    if oldest is not None and recent and oldest.id != recent[0].id:
        recent.insert(0, oldest)
    return [_as_listing(row) for row in recent]


def _deployed_by(s: Session, project_id: int, env: str, release: str) -> int | None:
    found = s.scalar(
        select(func.min(Release.deploy_id)).where(
            Release.project_id == project_id, Release.env == env, Release.name == release
        )
    )
    return int(found) if found is not None else None


def rollback_release(
    s: Session, project_id: int, env: str, hosts: Sequence[str], to: str = ""
) -> str | None:
    """The release a rollback of ``hosts`` goes to, from the records (as the worker will
    choose it unless a host's link says otherwise): ``to``, or the last good one."""
    if to:
        return to
    rows = s.execute(
        select(Release.host, Release.name, Release.bad)
        .join(Deploy, Deploy.id == Release.deploy_id)
        .where(
            Release.project_id == project_id,
            Release.env == env,
            Release.state == ReleaseState.COMPLETE,
            Deploy.status == DeployStatus.SUCCESS,
        )
    ).all()
    good: dict[str, set[str]] = {}
    bad: set[str] = set()
    for host, name, is_bad in rows:
        good.setdefault(host, set()).add(name)
        if is_bad:
            bad.add(name)
    live = {
        row.host: row.current_release
        for row in s.scalars(
            select(HostState).where(HostState.project_id == project_id, HostState.env == env)
        )
    }
    return rollback_target(good, list(hosts), dict(live), bad)


def crossing(s: Session, project_id: int, env: str, release: str) -> rules.Crossing:
    """What going back to ``release`` in ``env`` crosses."""
    return rules.crossing(
        listings(s, project_id, env), release, _deployed_by(s, project_id, env, release)
    )


def rollback_crossing(
    s: Session,
    project: Project,
    config: ProjectConfig,
    env: str,
    hosts: Sequence[str] | None,
    to: str = "",
) -> rules.Crossing | None:
    """What a rollback of ``env`` (to ``to``, or the last good release) would cross; None
    when there is no release to go to."""
    chosen = list(hosts or [h.key for h in config.environment(env).hosts])
    target = rollback_release(s, project.id, env, chosen, to)
    return crossing(s, project.id, env, target) if target else None


def reason_of(options: dict[str, Any] | None) -> str:
    return str((options or {}).get("force_migrations_reason") or "")


def check_reason(force: bool, reason: str) -> str:
    """A forced rollback needs a reason: one printable line, at most ``MAX_REASON``."""
    reason = (reason or "").strip()
    if not force:
        if reason:
            raise ValidationError("reason: only with force_migrations")
        return ""
    if not reason:
        raise ValidationError("force_migrations needs a reason (--reason TEXT)")
    if len(reason) > MAX_REASON or printable(reason, MAX_REASON + 1) != reason:
        raise ValidationError(f"reason: one line of at most {MAX_REASON} printable characters")
    return reason


def guard_rollback(
    s: Session,
    actor: Actor,
    project: Project,
    config: ProjectConfig,
    env: str,
    hosts: Sequence[str] | None,
    to: str,
    options: dict[str, Any] | None,
) -> dict[str, Any]:
    """Refuse a rollback that crosses an irreversible migration (``Conflict`` listing them),
    unless it is forced with a reason by a master of the space: then the force is audited
    and announced. Returns what the deploy's options keep: the release that was checked
    (``migrations_target``: the worker refuses to go anywhere else) and, when forced, what
    was crossed (``migrations_crossed``)."""
    cross = rollback_crossing(s, project, config, env, hosts, to)
    if cross is None or not (cross.basis or cross.unknown):
        return {}  # nothing to go to, or nothing ever listed
    checked = {"migrations_target": cross.release}
    if not cross.blocked:
        return checked
    forced = bool((options or {}).get("force_migrations"))
    if not forced:
        raise Conflict(
            f"cannot roll back {project.name} {env} to {cross.release}: {rules.describe(cross)}; "
            "a master may force it with a reason (--force-migrations --reason TEXT)",
            release=cross.release,
            migrations=cross.irreversible,
            unknown=cross.unknown or None,
        )
    try:
        require(s, actor, FORCE, project=project)
    except PermissionDenied:
        raise PermissionDenied(
            f"only a master of the space may force a rollback across irreversible migrations "
            f"({', '.join(cross.irreversible[:20]) or cross.unknown})"
        ) from None
    reason = reason_of(options)
    record(
        s,
        actor,
        "rollback.force_migrations",
        f"project:{project.name}/{env}",
        space_id=project.space_id,
        project_id=project.id,
        to=cross.release,
        migrations=cross.irreversible,
        unknown=cross.unknown or None,
        reason=reason,
    )
    from ferryman.services.notifications import emit

    emit(
        s,
        FORCED_EVENT,
        project,
        env,
        {
            "actor": actor.username,
            "release": cross.release,
            "migrations": ", ".join(cross.irreversible[:20]) or cross.unknown,
            "reason": reason,
        },
        f"/s/{_space_name(s, project)}/projects/{project.name}",
    )
    return {**checked, "migrations_crossed": cross.to_dict()}


def _space_name(s: Session, project: Project) -> str:
    from ferryman.db.models import Space

    space = s.get(Space, project.space_id)
    return space.name if space else "default"


def _first_deploys(s: Session, project_id: int, env: str) -> dict[str, int]:
    rows = s.execute(
        select(Release.name, func.min(Release.deploy_id))
        .where(Release.project_id == project_id, Release.env == env)
        .group_by(Release.name)
    ).all()
    return {name: int(first) for name, first in rows}


def for_releases(
    db: Database, project_id: int, env: str, names: Sequence[str], hosts: Sequence[str]
) -> dict[str, Any]:
    """For the releases page: per release of ``names``, the migrations it brought in
    (``applied``) and what going back to it would cross (``crossing``); and what the default
    rollback of ``hosts`` would cross (``rollback``). Empty where nothing was ever listed."""
    with db.read() as s:
        found = listings(s, project_id, env)
        if not found:
            return {"migrations": {}, "rollback_crosses": None}
        first = _first_deploys(s, project_id, env)
        target = rollback_release(s, project_id, env, hosts)
    shown: dict[str, Any] = {}
    for name in dict.fromkeys([*names, *(x.release for x in found)]):
        shown[name] = {
            "applied": [{"version": v, "reversible": r} for v, r in rules.forward(found, name)],
            "crossing": rules.crossing(found, name, first.get(name)).to_dict(),
        }
    back = rules.crossing(found, target, first.get(target)).to_dict() if target else None
    return {"migrations": shown, "rollback_crosses": back}


def for_ticket(
    s: Session,
    project: Project,
    config: ProjectConfig,
    env: str,
    kind: str,
    hosts: Sequence[str],
    target_release: str,
    commit: str,
) -> dict[str, Any] | None:
    """For a ticket's preview: what its rollback would cross; for a deploy of a commit an
    earlier release of ``env`` shipped, what going back to that code crosses (a deploy of
    older code is a rollback in disguise). None when nothing is known."""
    if kind == "rollback":
        cross = rollback_crossing(s, project, config, env, hosts, target_release)
        return cross.to_dict() if cross is not None else None
    if kind != "deploy" or not commit:
        return None
    earlier = s.scalar(
        select(Release.name)
        .where(Release.project_id == project.id, Release.env == env, Release.commit == commit)
        .order_by(Release.deploy_id.desc())
        .limit(1)
    )
    if earlier is None:
        return None
    return crossing(s, project.id, env, earlier).to_dict()


def ticket_preview(
    db: Database,
    project_id: int,
    config: ProjectConfig,
    env: str,
    kind: str,
    hosts: Sequence[str],
    target_release: str,
    commit: str,
) -> dict[str, Any] | None:
    """``for_ticket`` in a read of its own (the ticket preview's)."""
    with db.read() as s:
        project = s.get(Project, project_id)
        if project is None:
            return None
        return for_ticket(s, project, config, env, kind, hosts, target_release, commit)
