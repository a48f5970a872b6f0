"""REST API v1: thin routes — parse, authenticate, call a service, serialise."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request

from ferryman.api.deps import DB, CurrentActor, SettingsDep
from ferryman.api.schemas import DeployBody, LoginBody, RollbackBody
from ferryman.config.project import parse_project
from ferryman.pipeline.check import as_dicts, run_checks
from ferryman.pipeline.context import new_context
from ferryman.services import deploy_views, deploys, projects, users

router = APIRouter(prefix="/api/v1")


def _wake(request: Request) -> None:
    worker = getattr(request.app.state, "worker", None)
    if worker is not None:
        worker.wake()


@router.post("/auth/login", tags=["auth"])
def login(body: LoginBody, db: DB) -> dict[str, str]:
    """Exchange a user name and password for an API token (shown once)."""
    return {
        "token": users.login(db, body.username, body.password, body.token_name),
        "username": body.username,
    }


@router.get("/me", tags=["auth"])
def me(actor: CurrentActor) -> dict[str, Any]:
    return {"username": actor.username, "is_superuser": actor.is_superuser}


@router.get("/ssh-key", tags=["system"])
def ssh_key(settings: SettingsDep, actor: CurrentActor) -> dict[str, str]:
    """The server's public key: add it to ``authorized_keys`` on every target host."""
    return {"public_key": settings.ssh_key.with_suffix(".pub").read_text().strip()}


@router.get("/projects", tags=["projects"])
def list_projects(db: DB, actor: CurrentActor) -> list[dict[str, Any]]:
    return [projects.summary(p) for p in projects.list_projects(db)]


@router.post("/projects", tags=["projects"])
def apply_project(
    db: DB,
    actor: CurrentActor,
    config: Annotated[dict[str, Any], Body(description="the project YAML as JSON")],
) -> dict[str, Any]:
    """Create the project, or replace its configuration (``ferryman apply``)."""
    project, created = projects.apply_project(db, actor, parse_project(config))
    return {"created": created, **projects.summary(project)}


@router.get("/projects/{name}", tags=["projects"])
def get_project(name: str, db: DB, actor: CurrentActor) -> dict[str, Any]:
    project = projects.get_project(db, name)
    return {**projects.summary(project), "config": project.config}


@router.post("/projects/{name}/deploys", status_code=201, tags=["deploys"])
def request_deploy(
    name: str, body: DeployBody, db: DB, actor: CurrentActor, request: Request
) -> dict[str, Any]:
    deploy = deploys.request_deploy(db, actor, name, body.env, body.ref, body.hosts)
    _wake(request)
    return deploy_views.get(db, deploy.id)


@router.post("/projects/{name}/rollbacks", status_code=201, tags=["deploys"])
def request_rollback(
    name: str, body: RollbackBody, db: DB, actor: CurrentActor, request: Request
) -> dict[str, Any]:
    deploy = deploys.request_rollback(db, actor, name, body.env, body.to)
    _wake(request)
    return deploy_views.get(db, deploy.id)


@router.get("/projects/{name}/envs/{env}/releases", tags=["deploys"])
def releases(name: str, env: str, db: DB, actor: CurrentActor) -> dict[str, Any]:
    """Per host: the live release and the releases kept there."""
    project = projects.get_project(db, name)
    config = projects.project_config(project)
    hosts = [h.key for h in config.environment(env).hosts]
    history = deploy_views.host_history(db, project.id, env)
    return {
        "project": name,
        "env": env,
        "hosts": [{"host": h, **history.get(h, {"live": None, "releases": []})} for h in hosts],
    }


@router.post("/projects/{name}/envs/{env}/check", tags=["projects"])
async def check(
    name: str, env: str, db: DB, settings: SettingsDep, actor: CurrentActor
) -> dict[str, Any]:
    """Check live that a deploy could work: SSH, host keys, dirs, tools, repository."""
    project = await asyncio.to_thread(projects.get_project, db, name)
    ctx = new_context(db, settings, projects.project_config(project), env)
    results = as_dicts(await run_checks(ctx))
    return {"project": name, "env": env, "ok": all(r["ok"] for r in results), "checks": results}


@router.get("/deploys", tags=["deploys"])
def list_deploys(
    db: DB, actor: CurrentActor, project: str | None = None, limit: int = Query(50, ge=1, le=500)
) -> list[dict[str, Any]]:
    return deploy_views.list_deploys(db, project, limit)


@router.get("/deploys/{deploy_id}", tags=["deploys"])
def get_deploy(deploy_id: int, db: DB, actor: CurrentActor) -> dict[str, Any]:
    return deploy_views.get(db, deploy_id)


@router.get("/deploys/{deploy_id}/logs", tags=["deploys"])
def get_logs(
    deploy_id: int,
    db: DB,
    actor: CurrentActor,
    after: int = Query(0, ge=0),
    limit: int = Query(1000, ge=1, le=5000),
) -> dict[str, Any]:
    lines = deploy_views.logs_after(db, deploy_id, after, limit)
    status = deploys.load(db, deploy_id)[0].status
    return {
        "deploy_id": deploy_id,
        "status": status,
        "lines": lines,
        "next": lines[-1]["id"] if lines else after,
    }


@router.get("/deploys/{deploy_id}/steps", tags=["deploys"])
def get_steps(deploy_id: int, db: DB, actor: CurrentActor) -> list[dict[str, Any]]:
    """Every command run for this deploy, per host, with exit status and output."""
    deploys.load(db, deploy_id)
    return deploy_views.steps_of(db, deploy_id)
