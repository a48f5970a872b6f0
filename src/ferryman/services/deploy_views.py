"""Reading deploys, their logs and steps, and which release each host serves.

Read-only views for the API, the CLI and the pipeline; the writers are in ``deploys``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from ferryman.db.models import Deploy, DeployHost, DeployStep, HostState, LogLine, Project, Release
from ferryman.db.session import Database
from ferryman.domain.masking import Masker
from ferryman.errors import ConfigError, NotFound
from ferryman.secretbox import is_sealed
from ferryman.services.audit import Actor
from ferryman.services.authz import require, visible_space_ids
from ferryman.services.deploys import load


def complete_releases(db: Database, project_id: int, env: str) -> dict[str, set[str]]:
    """Per host: the names of the releases Ferryman completed there and has not removed."""
    with db.read() as s:
        rows = s.execute(
            select(Release.host, Release.name).where(
                Release.project_id == project_id, Release.env == env, Release.state == "complete"
            )
        ).all()
    complete: dict[str, set[str]] = {}
    for host, name in rows:
        complete.setdefault(host, set()).add(name)
    return complete


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
                Release.project_id == project_id, Release.env == env, Release.state == "complete"
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
            raise NotFound(f"no deploy #{deploy_id}")
        require(s, actor, "deploy.read", project=project, what=f"deploy #{deploy_id}")
        return deploy


def list_deploys(
    db: Database,
    actor: Actor,
    project: int | str | None = None,
    limit: int = 50,
    space: int | str | None = None,
) -> list[dict[str, Any]]:
    from ferryman.services.projects import find_project
    from ferryman.services.spaces import visible_space

    with db.read() as s:
        query = select(Deploy, Project.name).join(Project, Project.id == Deploy.project_id)
        if project is not None:
            query = query.where(Project.id == find_project(s, actor, project, "deploy.read").id)
        elif space is not None:
            query = query.where(
                Project.space_id == visible_space(s, actor, space, "deploy.read").id
            )
        else:
            ids = visible_space_ids(s, actor)
            if ids is not None:
                query = query.where(Project.space_id.in_(ids))
        rows = s.execute(query.order_by(Deploy.id.desc()).limit(min(limit, 500))).all()
    return [describe(d, name) for d, name in rows]


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
            select(Release.name, Release.commit, Deploy)
            .join(Deploy, Deploy.id == Release.deploy_id)
            .where(
                Release.project_id == project_id, Release.env == env, Release.state == "complete"
            )
        ).all()
    out: dict[str, dict[str, Any]] = {}
    for name, commit, deploy in rows:
        out[name] = {
            "name": name,
            "commit": commit,
            "ref": deploy.ref,
            "kind": deploy.kind,
            "deploy_id": deploy.id,
            "by": deploy.requested_by_name,
            "at": deploy.created_at.isoformat(),
        }
    return out
