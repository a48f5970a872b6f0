"""Reading deploys, their logs and steps, and which release each host serves.

Read-only views for the API, the CLI and the pipeline; the writers are in ``deploys``.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ferryman.db.models import Deploy, DeployHost, DeployStep, HostState, LogLine, Project, Release
from ferryman.db.session import Database
from ferryman.domain.masking import Masker
from ferryman.domain.statuses import DeployStatus, ReleaseState
from ferryman.errors import ConfigError, NotFound
from ferryman.secretbox import is_sealed
from ferryman.services.audit import Actor
from ferryman.services.authz import hidden, require, visible_space_ids
from ferryman.services.deploys import load


def complete_releases(db: Database, project_id: int, env: str) -> dict[str, set[str]]:
    """Per host: the names of the releases Ferryman completed there and has not removed."""
    with db.read() as s:
        rows = s.execute(
            select(Release.host, Release.name).where(
                Release.project_id == project_id,
                Release.env == env,
                Release.state == ReleaseState.COMPLETE,
            )
        ).all()
    complete: dict[str, set[str]] = {}
    for host, name in rows:
        complete.setdefault(host, set()).add(name)
    return complete


def release_order(db: Database, project_id: int, env: str) -> dict[str, int]:
    """Every release name the records of a project environment know (any host, any state),
    with its rank: the id of its first record, so a higher rank is a newer release."""
    with db.read() as s:
        rows = s.execute(
            select(Release.name, func.min(Release.id))
            .where(Release.project_id == project_id, Release.env == env)
            .group_by(Release.name)
        ).all()
    return {name: rank for name, rank in rows}


def good_releases(db: Database, project_id: int, env: str) -> dict[str, set[str]]:
    """Per host: the releases a *successful* deploy completed there and that were not removed
    since (a failed deploy's release may still be on disk: it is never rolled back to)."""
    with db.read() as s:
        rows = s.execute(
            select(Release.host, Release.name)
            .join(Deploy, Deploy.id == Release.deploy_id)
            .where(
                Release.project_id == project_id,
                Release.env == env,
                Release.state == ReleaseState.COMPLETE,
                Deploy.status == DeployStatus.SUCCESS,
            )
        ).all()
    good: dict[str, set[str]] = {}
    for host, name in rows:
        good.setdefault(host, set()).add(name)
    return good


def hosts_before(db: Database, deploy_id: int, releases_dir: str) -> dict[str, str]:
    """What each host served before the deploy: a release name, a foreign link, or "".

    A gray release's saved state wins (a resumed rollout probes again, after some hosts
    switched); otherwise the first probe's record of each host."""
    with db.read() as s:
        deploy = s.get(Deploy, deploy_id)
        if deploy is None:
            raise NotFound(f"no deploy #{deploy_id}")
        saved = (deploy.rollout or {}).get("previous") or {}
        rows = s.scalars(select(DeployHost).where(DeployHost.deploy_id == deploy_id))
        found = {r.host: r.previous_release or "" for r in rows}
    for host, link in saved.items():
        if not link:
            found[host] = ""
        elif posixpath.dirname(str(link).rstrip("/")) == releases_dir:
            found[host] = posixpath.basename(str(link).rstrip("/"))
        else:
            found[host] = str(link)
    return found


def environment_deploys(db: Database, project_id: int, env: str) -> list[int]:
    """The ids of an environment's deploys, newest first."""
    with db.read() as s:
        return list(
            s.scalars(
                select(Deploy.id)
                .where(Deploy.project_id == project_id, Deploy.env == env)
                .order_by(Deploy.id.desc())
            )
        )


def live_releases(db: Database, project_id: int, env: str) -> dict[str, str]:
    with db.read() as s:
        return {
            h.host: h.current_release
            for h in s.scalars(
                select(HostState).where(HostState.project_id == project_id, HostState.env == env)
            )
        }


def host_history(db: Database, project_id: int, env: str) -> dict[str, dict[str, Any]]:
    """Per host: the live release and the complete releases Ferryman left there."""
    with db.read() as s:
        live = {
            h.host: h.current_release
            for h in s.scalars(
                select(HostState).where(HostState.project_id == project_id, HostState.env == env)
            )
        }
        complete: dict[str, list[str]] = {}
        for r in s.scalars(
            select(Release)
            .where(
                Release.project_id == project_id,
                Release.env == env,
                Release.state == ReleaseState.COMPLETE,
            )
            .order_by(Release.name)
        ):
            complete.setdefault(r.host, []).append(r.name)
    hosts = set(live) | set(complete)
    return {h: {"live": live.get(h), "releases": complete.get(h, [])} for h in sorted(hosts)}


def get(db: Database, deploy_id: int) -> dict[str, Any]:
    deploy, project = load(db, deploy_id)
    with db.read() as s:
        hosts = s.scalars(
            select(DeployHost).where(DeployHost.deploy_id == deploy_id).order_by(DeployHost.host)
        ).all()
        steps = s.scalar(
            select(func.count()).select_from(DeployStep).where(DeployStep.deploy_id == deploy_id)
        )
    data = describe(deploy, project.name)
    mask = secret_masker(db, deploy) if any(h.error for h in hosts) else Masker(())
    data["hosts"] = [
        {
            "host": h.host,
            "status": h.status,
            "previous_release": h.previous_release,
            "error": mask(h.error),
        }
        for h in hosts
    ]
    data["steps"] = steps
    return data


def secret_masker(db: Database, deploy: Deploy) -> Masker:
    """The deploy's own secret values, to mask what older workers stored unmasked (per-host
    errors before revision 0014 held a failing hook's stderr as it was)."""
    names = set(deploy.secret_names or [])
    values = []
    for name, value in (deploy.variables or {}).items():
        if name not in names or not isinstance(value, str):
            continue
        if is_sealed(value):
            try:
                value = db.box.open(value)
            except ConfigError:  # no key here, or another key: nothing to compare with
                continue
        values.append(value)
    return Masker(values)


def describe(deploy: Deploy, project_name: str) -> dict[str, Any]:
    return {
        "id": deploy.id,
        "project": project_name,
        "env": deploy.env,
        "kind": deploy.kind,
        "ref": deploy.ref,
        "commit": deploy.commit,
        "release": deploy.release_name or deploy.target_release,
        "status": deploy.status,
        "requested_by": deploy.requested_by_name,
        "ticket_id": deploy.ticket_id,
        "queue": deploy.queue,
        "retry_of": deploy.retry_of,
        "not_before": deploy.not_before.isoformat() if deploy.not_before else None,
        "hosts_selected": deploy.hosts,
        "stages": deploy.stages,
        "rollout": deploy.rollout,
        "rollout_request": deploy.rollout_request or None,
        "options": _shown_options(deploy.options or {}),
        "error": deploy.error,
        "created_at": deploy.created_at.isoformat(),
        "started_at": deploy.started_at.isoformat() if deploy.started_at else None,
        "finished_at": deploy.finished_at.isoformat() if deploy.finished_at else None,
    }


def _shown_options(options: dict[str, Any]) -> dict[str, Any]:
    """A deploy's options as every viewer sees them: a pull deploy's artifact without its
    path on the server (``FERRYMAN_HOME`` layout is nobody's business, reporters least)."""
    artifact = options.get("artifact")
    if not isinstance(artifact, dict) or "path" not in artifact:
        return options
    return {**options, "artifact": {k: v for k, v in artifact.items() if k != "path"}}


def visible_deploy(db: Database, actor: Actor, deploy_id: int) -> Deploy:
    """The deploy, if the actor may read its project (else ``NotFound``/``PermissionDenied``)."""
    with db.read() as s:
        deploy = s.get(Deploy, deploy_id)
        project = s.get(Project, deploy.project_id) if deploy else None
        if deploy is None or project is None:
            raise hidden(f"deploy #{deploy_id}")
        require(s, actor, "deploy.read", project=project, what=f"deploy #{deploy_id}")
        return deploy


@dataclass(frozen=True)
class DeployFilter:
    """What ``list_deploys`` keeps: each field set narrows the list (all of them at once)."""

    status: str | None = None
    env: str | None = None
    user: str | None = None  # who asked for it
    since: datetime | None = None  # created at or after
    before: int | None = None  # a page: deploys older than this id


def list_deploys(
    db: Database,
    actor: Actor,
    project: int | str | None = None,
    limit: int = 50,
    space: int | str | None = None,
    only: DeployFilter = DeployFilter(),
) -> list[dict[str, Any]]:
    with db.read() as s:
        # the ids first, then their rows: a planner that walks a space's projects (SQLite
        # without statistics) sorts ids from an index, not 100,000 whole deploys
        query = _filtered(select(Deploy.id).join(Project, Project.id == Deploy.project_id), only)
        query = _scoped(s, actor, query, project, space)
        ids = list(s.scalars(query.order_by(Deploy.id.desc()).limit(min(limit, 500))))
        rows = s.execute(
            select(Deploy, Project.name)
            .join(Project, Project.id == Deploy.project_id)
            .where(Deploy.id.in_(ids))
            .order_by(Deploy.id.desc())
        ).all()
    return [describe(d, name) for d, name in rows]


def count_deploys(
    db: Database,
    actor: Actor,
    project: int | str | None = None,
    space: int | str | None = None,
    only: DeployFilter = DeployFilter(),
) -> int:
    """How many deploys ``list_deploys`` would page through with the same arguments
    (``before`` aside)."""
    every = DeployFilter(only.status, only.env, only.user, only.since)
    with db.read() as s:
        query = _filtered(
            select(func.count()).select_from(Deploy).join(Project, Project.id == Deploy.project_id),
            every,
        )
        query = _scoped(s, actor, query, project, space)
        return int(s.scalar(query) or 0)


def any_deploy(
    db: Database,
    actor: Actor,
    space: int | str | None = None,
    only: DeployFilter = DeployFilter(),
) -> bool:
    """Whether ``list_deploys`` would find any (the first one answers: no count of 100,000)."""
    with db.read() as s:
        query = _filtered(select(Deploy.id).join(Project, Project.id == Deploy.project_id), only)
        query = _scoped(s, actor, query, None, space)
        return s.scalar(query.limit(1)) is not None


def _scoped(
    s: Session, actor: Actor, query: Any, project: int | str | None, space: int | str | None
) -> Any:
    """``query`` narrowed to one project, one space, or every space the actor sees."""
    from ferryman.services.projects import find_project
    from ferryman.services.spaces import visible_space

    if project is not None:
        return query.where(Project.id == find_project(s, actor, project, "deploy.read").id)
    if space is not None:
        return query.where(Project.space_id == visible_space(s, actor, space, "deploy.read").id)
    ids = visible_space_ids(s, actor)
    return query if ids is None else query.where(Project.space_id.in_(ids))


def _filtered(query: Any, only: DeployFilter) -> Any:
    if only.status is not None:
        query = query.where(Deploy.status == only.status)
    if only.env is not None:
        query = query.where(Deploy.env == only.env)
    if only.user is not None:
        query = query.where(Deploy.requested_by_name == only.user)
    if only.since is not None:
        query = query.where(Deploy.created_at >= only.since)
    if only.before is not None:
        query = query.where(Deploy.id < only.before)
    return query


def logs_after(
    db: Database, deploy_id: int, after: int = 0, limit: int = 1000
) -> list[dict[str, Any]]:
    with db.read() as s:
        if s.get(Deploy, deploy_id) is None:
            raise NotFound(f"no deploy #{deploy_id}")
        rows = s.scalars(
            select(LogLine)
            .where(LogLine.deploy_id == deploy_id, LogLine.id > after)
            .order_by(LogLine.id)
            .limit(min(limit, 5000))
        ).all()
    return [
        {
            "id": r.id,
            "ts": r.ts.isoformat(),
            "host": r.host,
            "stage": r.stage,
            "stream": r.stream,
            "text": r.text,
        }
        for r in rows
    ]


def log_page(db: Database, actor: Actor, deploy_id: int, after: int, limit: int) -> dict[str, Any]:
    """One page of a deploy's log after the cursor, with the cursor for the next page."""
    deploy = visible_deploy(db, actor, deploy_id)
    lines = logs_after(db, deploy_id, after, limit)
    return {
        "deploy_id": deploy_id,
        "status": deploy.status,
        "lines": lines,
        "next": lines[-1]["id"] if lines else after,
        "more": len(lines) == limit,
    }


def steps_of(db: Database, deploy_id: int) -> list[dict[str, Any]]:
    with db.read() as s:
        rows = s.scalars(
            select(DeployStep).where(DeployStep.deploy_id == deploy_id).order_by(DeployStep.id)
        ).all()
    return [
        {
            "host": r.host,
            "stage": r.stage,
            "command": r.command,
            "exit_status": r.exit_status,
            "output": r.output,
            "started_at": r.started_at.isoformat(),
            "duration": r.duration,
        }
        for r in rows
    ]


def release_details(db: Database, project_id: int, env: str) -> dict[str, dict[str, Any]]:
    """Per release name kept anywhere in the environment: commit, ref, kind, who, when."""
    with db.read() as s:
        rows = s.execute(
            select(  # columns, not whole deploys: a release is kept on every host
                Release.name,
                Release.commit,
                Deploy.ref,
                Deploy.kind,
                Deploy.id,
                Deploy.requested_by_name,
                Deploy.created_at,
            )
            .join(Deploy, Deploy.id == Release.deploy_id)
            .where(
                Release.project_id == project_id,
                Release.env == env,
                Release.state == ReleaseState.COMPLETE,
            )
        ).all()
    out: dict[str, dict[str, Any]] = {}
    for name, commit, ref, kind, deploy_id, by, at in rows:
        out[name] = {
            "name": name,
            "commit": commit,
            "ref": ref,
            "kind": kind,
            "deploy_id": deploy_id,
            "by": by,
            "at": at.isoformat(),
        }
    return out


def rollbacks_after(db: Database, deploy_id: int) -> list[dict[str, Any]]:
    """The rollbacks of a deploy's environment that came after it and before the next
    successful deploy there — those that took its release away (or tried to), oldest first,
    each with ``undid`` telling whether it ended on another release than the deploy's."""
    with db.read() as s:
        original = s.get(Deploy, deploy_id)
        if original is None:
            raise NotFound(f"no deploy #{deploy_id}")
        same_env = (Deploy.project_id == original.project_id, Deploy.env == original.env)
        next_deploy = s.scalar(
            select(func.min(Deploy.id)).where(
                *same_env,
                Deploy.id > deploy_id,
                Deploy.kind.in_(("deploy", "config")),
                Deploy.status == DeployStatus.SUCCESS,
            )
        )
        query = select(Deploy).where(*same_env, Deploy.id > deploy_id, Deploy.kind == "rollback")
        if next_deploy is not None:
            query = query.where(Deploy.id < next_deploy)
        rows = s.scalars(query.order_by(Deploy.id)).all()
        return [
            {
                "id": r.id,
                "status": r.status,
                "release": r.release_name or r.target_release or "",
                "requested_by": r.requested_by_name,
                "ticket_id": r.ticket_id,
                "created_at": r.created_at.isoformat(),
                "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                "undid": r.status == DeployStatus.SUCCESS
                and (r.release_name or "") != (original.release_name or ""),
            }
            for r in rows
        ]
