"""Projects: apply, read, copy, detect, refs, role overrides, releases; direct deploys and
rollbacks (where no ticket is required)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response

from ferryman.api.config_views import ProjectMember, Refs, Releases
from ferryman.api.deps import DB, CurrentActor, SettingsDep, perm, wake_worker
from ferryman.api.paging import Page, PerPage, page_of, paged
from ferryman.api.schemas import CopyBody, DeployBody, DetectBody, MemberBody, RollbackBody
from ferryman.api.views import (
    AppliedProject,
    ApplyPlan,
    CheckReport,
    Deploy,
    Project,
    ProjectDetail,
)
from ferryman.config.project import parse_project
from ferryman.config.settings import Settings
from ferryman.db.session import Database
from ferryman.services import (
    checks,
    deploy_views,
    deploys,
    migrations,
    project_deletion,
    projects,
    promotion,
    repos,
    rollouts,
)
from ferryman.services.audit import Actor
from ferryman.services.space_access import space_access

router = APIRouter()


@router.get(
    "/projects",
    response_model=list[Project],
    tags=["projects"],
    openapi_extra=perm("project.read") | paged("projects"),
)
def list_projects(
    db: DB,
    actor: CurrentActor,
    request: Request,
    response: Response,
    space: str | None = None,
    page: Page = 1,
    per_page: PerPage = 100,
) -> list[dict[str, Any]]:
    return page_of(request, response, projects.list_projects(db, actor, space), page, per_page)


@router.post(
    "/projects",
    response_model=AppliedProject | ApplyPlan,
    tags=["projects"],
    openapi_extra=perm("project.create"),
)
def apply_project(
    db: DB,
    actor: CurrentActor,
    config: Annotated[dict[str, Any], Body(description="the project YAML as JSON")],
    dry_run: Annotated[
        bool,
        Query(description="check everything and say what would change, writing nothing"),
    ] = False,
) -> dict[str, Any]:
    """Create the project (developers and above; the creator masters it), or replace its
    configuration (masters: ``project.manage``) — ``ferryman apply``. Its ``space`` (default
    ``default``) must have every environment it names. With ``dry_run``: the same checks, and
    the ``changes`` it would make (``ferryman apply --dry-run``)."""
    parsed = parse_project(config)
    if dry_run:
        plan = projects.plan_apply(db, actor, parsed)
        return {**plan, "id": None if plan["created"] else plan["id"]}
    project, created = projects.apply_project(db, actor, parsed)
    _, space = projects.get_project(db, actor, project.id)
    return {"created": created, **projects.project_dict(project, space)}


@router.get(
    "/projects/{project}",
    response_model=ProjectDetail,
    tags=["projects"],
    openapi_extra=perm("project.read"),
)
def get_project(project: str, db: DB, actor: CurrentActor) -> dict[str, Any]:
    """A project by id, by name (when unique among your spaces) or as ``SPACE:NAME``."""
    found, space = projects.get_project(db, actor, project)
    return {**projects.project_dict(found, space), "config": found.config}


@router.delete(
    "/projects/{project}",
    status_code=204,
    tags=["projects"],
    openapi_extra=perm("project.manage"),
)
def delete_project(project: str, db: DB, actor: CurrentActor) -> Response:
    """Delete the project (masters): refused (409) while one of its deploys is queued, running
    or paused. Its releases stay on the hosts; its deploys, tickets and audit rows are kept
    (under ``NAME~ID``); open tickets are cancelled; the name can be applied again."""
    project_deletion.delete_project(db, actor, project)
    return Response(status_code=204)


@router.post(
    "/projects/{project}/copy",
    status_code=201,
    response_model=Project,
    tags=["projects"],
    openapi_extra=perm("project.manage"),
)
def copy_project(project: str, body: CopyBody, db: DB, actor: CurrentActor) -> dict[str, Any]:
    """Copy the configuration under a new name, here or into another space you master."""
    copied = projects.copy_project(db, actor, project, body.name, body.space)
    found, space = projects.get_project(db, actor, copied.id)
    return projects.project_dict(found, space)


@router.post(
    "/projects/{project}/detect",
    deprecated=True,
    response_model=CheckReport,
    tags=["projects"],
    openapi_extra=perm("project.detect"),
)
async def detect(
    project: str, body: DetectBody, db: DB, settings: SettingsDep, actor: CurrentActor
) -> dict[str, Any]:
    """Deprecated alias of ``POST /projects/{project}/envs/{env}/check`` (the environment in
    the body): SSH with the key, host keys known, dirs, tools, repository."""
    return await _check(db, settings, actor, project, body.env)


@router.post(
    "/projects/{project}/envs/{env}/check",
    response_model=CheckReport,
    tags=["projects"],
    openapi_extra=perm("project.detect"),
)
async def check(
    project: str, env: str, db: DB, settings: SettingsDep, actor: CurrentActor
) -> dict[str, Any]:
    """The same as ``detect`` (the path ``ferryman check`` uses)."""
    return await _check(db, settings, actor, project, env)


async def _check(
    db: Database, settings: Settings, actor: Actor, ref: str, env: str
) -> dict[str, Any]:
    return await checks.project(db, settings, actor, ref, env)


@router.get(
    "/projects/{project}/refs",
    response_model=Refs,
    tags=["projects"],
    openapi_extra=perm("project.read"),
)
async def refs(
    project: str,
    db: DB,
    settings: SettingsDep,
    actor: CurrentActor,
    branch: str | None = Query(None, max_length=200),
    env: str | None = Query(None, max_length=64),
    limit: int = Query(30, ge=1, le=200),
) -> dict[str, Any]:
    """Branches, tags (newest first) and recent commits of ``branch`` (default branch when
    omitted) with author and message, read from the repository."""
    found, config = await asyncio.to_thread(
        projects.project_config, db, actor, project, "project.read"
    )
    space = await asyncio.to_thread(space_access, db, settings, found.space_id)
    return await repos.refs(settings, config, env=env, branch=branch, limit=limit, space=space)


@router.get(
    "/projects/{project}/members",
    response_model=list[ProjectMember],
    tags=["projects"],
    openapi_extra=perm("member.read"),
)
def list_project_members(project: str, db: DB, actor: CurrentActor) -> list[dict[str, Any]]:
    """Per-project role overrides."""
    return projects.list_project_members(db, actor, project)


@router.post(
    "/projects/{project}/members",
    response_model=ProjectMember,
    tags=["projects"],
    openapi_extra=perm("member.manage"),
)
def set_project_member(
    project: str, body: MemberBody, db: DB, actor: CurrentActor
) -> dict[str, Any]:
    """Override a space member's role for this project (up or down)."""
    return projects.set_project_member(db, actor, project, body.user, body.role)


@router.delete(
    "/projects/{project}/members/{user}",
    status_code=204,
    tags=["projects"],
    openapi_extra=perm("member.manage"),
)
def remove_project_member(project: str, user: str, db: DB, actor: CurrentActor) -> Response:
    projects.remove_project_member(db, actor, project, user)
    return Response(status_code=204)


@router.post(
    "/projects/{project}/deploys",
    status_code=201,
    response_model=Deploy,
    response_model_exclude_unset=True,
    tags=["deploys"],
    openapi_extra=perm("deploy.direct"),
)
async def request_deploy(
    project: str,
    body: DeployBody,
    db: DB,
    settings: SettingsDep,
    actor: CurrentActor,
    request: Request,
) -> dict[str, Any]:
    """Deploy without a ticket; refused (``approval_required``) where the environment needs
    approval. ``config_only`` ships the live release again with the current config files.
    ``check_ref`` refuses a ref the repository does not have (422) before queuing."""
    if body.check_ref and not body.config_only:
        found, config = await asyncio.to_thread(
            projects.project_config, db, actor, project, "deploy.direct"
        )
        space = await asyncio.to_thread(space_access, db, settings, found.space_id)
        await repos.require_ref(settings, config, body.env, body.ref, space)

    commit = ""
    if not body.config_only:  # pinned now where the env takes only promoted commits
        commit = await promotion.pinned_commit(db, settings, actor, project, body.env, body.ref)

    def queue() -> dict[str, Any]:
        if body.config_only:
            deploy = deploys.request_config_deploy(db, actor, project, body.env, body.hosts)
        else:
            deploy = deploys.request_deploy(
                db, actor, project, body.env, body.ref, body.hosts, body.not_before, commit
            )
        return deploy_views.get(db, deploy.id)

    result = await asyncio.to_thread(queue)
    wake_worker(request)
    return result


@router.post(
    "/projects/{project}/rollbacks",
    status_code=201,
    response_model=Deploy,
    response_model_exclude_unset=True,
    tags=["deploys"],
    openapi_extra=perm("deploy.rollback"),
)
def request_rollback(
    project: str, body: RollbackBody, db: DB, actor: CurrentActor, request: Request
) -> dict[str, Any]:
    deploy = deploys.request_rollback(
        db,
        actor,
        project,
        body.env,
        body.to,
        emergency=body.emergency,
        force=body.force,
        force_migrations=body.force_migrations,
        reason=body.reason or "",
    )
    wake_worker(request)
    return deploy_views.get(db, deploy.id)


@router.get(
    "/projects/{project}/envs/{env}/releases",
    response_model=Releases,
    response_model_exclude_unset=True,
    tags=["deploys"],
    openapi_extra=perm("project.read"),
)
async def releases(
    project: str,
    env: str,
    db: DB,
    settings: SettingsDep,
    actor: CurrentActor,
    verify: bool = Query(
        False,
        description="also read each host's webroot link (drift) and check its live and kept "
        "releases against their manifests (damaged)",
    ),
) -> dict[str, Any]:
    """Per host: the live release and the releases kept there (``bad``: a release whose
    rollout aborted). With ``verify``, each host is asked where its webroot really points and
    hosts that differ from the records, or were changed by hand, carry a ``drift`` reason; and
    each release it serves or keeps is checked against its manifest (every file hashed on the
    host): ``damaged`` maps each release that does not match to the reason (files missing or
    changed, no manifest), ``notes`` what differs without damaging it (extra files, modes)."""
    found, config = await asyncio.to_thread(
        projects.project_config, db, actor, project, "project.read"
    )
    hosts = [h.key for h in config.environment(env).hosts]
    history = await asyncio.to_thread(deploy_views.host_history, db, found.id, env)
    bad = await asyncio.to_thread(rollouts.bad_releases, db, found.id, env)
    rows = [{"host": h, **history.get(h, {"live": None, "releases": []})} for h in hosts]
    if verify:
        seen = await checks.releases(
            db,
            settings,
            found.space_id,
            config,
            env,
            {r["host"]: r["live"] for r in rows},
            {r["host"]: r["releases"] for r in rows},
        )
        for row in rows:
            row.update(seen.get(row["host"], {}))
    names = sorted({n for r in rows for n in [*r["releases"], *([r["live"]] if r["live"] else [])]})
    crossing = await asyncio.to_thread(migrations.for_releases, db, found.id, env, names, hosts)
    return {"project": found.name, "env": env, "hosts": rows, "bad": sorted(bad), **crossing}
