"""Deploys: list, one deploy, its log lines and per-host steps."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from ferryman.api.deps import DB, MAX_ID, CurrentActor, Id, SettingsDep, perm, wake_worker
from ferryman.api.paging import IsoTime, paged, paginate
from ferryman.api.schemas import PromoteBody, ReasonBody, RetryBody
from ferryman.api.views import Deploy, DeployStatus, LogPage, Step, Ticket, Watch
from ferryman.services import deploy_views, deploys, promotion, rollouts, watch

router = APIRouter(prefix="/deploys", tags=["deploys"])


@router.get(
    "",
    response_model=list[Deploy],
    response_model_exclude_unset=True,
    openapi_extra=perm("deploy.read") | paged("deploys"),
)
def list_deploys(
    db: DB,
    actor: CurrentActor,
    request: Request,
    response: Response,
    project: str | None = Query(None, max_length=130, description="id, name or SPACE:NAME"),
    space: str | None = Query(None, max_length=64),
    status: Annotated[DeployStatus | None, Query()] = None,
    env: str | None = Query(None, max_length=64),
    user: str | None = Query(None, max_length=64, description="who asked for it"),
    since: Annotated[IsoTime, Query(description="created at or after (ISO 8601)")] = None,
    before: int | None = Query(
        None, ge=1, le=MAX_ID, description="the cursor: deploys older than this id"
    ),
    limit: int = Query(50, ge=1, le=500),
) -> list[dict[str, Any]]:
    """Newest first, ``limit`` at a time. The ``Link`` header's ``rel="next"`` is the next
    page (``before`` = the last id of this one); ``X-Total-Count`` counts every deploy the
    filters match."""
    only = deploy_views.DeployFilter(status=status, env=env, user=user, since=since, before=before)
    rows = deploy_views.list_deploys(db, actor, project, limit, space, only)
    total = deploy_views.count_deploys(db, actor, project, space, only)
    paginate(request, response, rows, limit, total)
    return rows


@router.get(
    "/{deploy_id}",
    response_model=Deploy,
    response_model_exclude_unset=True,
    openapi_extra=perm("deploy.read"),
)
def get_deploy(deploy_id: Id, db: DB, actor: CurrentActor) -> dict[str, Any]:
    deploy_views.visible_deploy(db, actor, deploy_id)
    return deploy_views.get(db, deploy_id)


@router.get(
    "/{deploy_id}/logs",
    response_model=LogPage,
    deprecated=True,
    openapi_extra=perm("deploy.read"),
)
def get_logs(
    deploy_id: Id,
    db: DB,
    actor: CurrentActor,
    after: int = Query(0, ge=0, le=2**63 - 1),
    limit: int = Query(1000, ge=1, le=5000),
) -> dict[str, Any]:
    """Deprecated alias of ``GET /deploys/{deploy_id}/log`` (the same page), kept for the
    scripts of the first release."""
    return deploy_views.log_page(db, actor, deploy_id, after, limit)


@router.post(
    "/{deploy_id}/cancel",
    response_model=Deploy,
    response_model_exclude_unset=True,
    openapi_extra=perm("deploy.cancel"),
)
def cancel_deploy(
    deploy_id: Id, db: DB, actor: CurrentActor, body: ReasonBody | None = None
) -> dict[str, Any]:
    """Stop a queued deploy before it starts, or a running one at its next safe point.
    Your own deploys as a developer; anyone's as a master."""
    deploys.request_cancel(db, actor, deploy_id, body.reason if body else "")
    return deploy_views.get(db, deploy_id)


@router.post(
    "/{deploy_id}/retry",
    status_code=201,
    response_model=Deploy,
    response_model_exclude_unset=True,
    openapi_extra=perm("deploy.direct"),
)
def retry_deploy(
    deploy_id: Id,
    db: DB,
    actor: CurrentActor,
    request: Request,
    body: RetryBody | None = None,
) -> dict[str, Any]:
    """Deploy a failed or cancelled deploy's commit again, reusing its build: to the same
    hosts, or with ``failed_only`` to the hosts that failed. A ticket's deploy needs the
    ticket permission and stays under that ticket."""
    retry = deploys.request_retry(db, actor, deploy_id, bool(body and body.failed_only))
    wake_worker(request)
    return deploy_views.get(db, retry.id)


@router.post(
    "/{deploy_id}/promote",
    status_code=201,
    response_model=Ticket,
    response_model_exclude_unset=True,
    openapi_extra=perm("ticket.create"),
)
async def promote(
    deploy_id: Id, body: PromoteBody, db: DB, settings: SettingsDep, actor: CurrentActor
) -> dict[str, Any]:
    """A ticket for ``env`` from this successful deploy: the same commit, every host of
    ``env``, waiting for approval where ``env`` needs it; ``GET /tickets/{id}/preview``
    compares that commit with what ``env`` runs. Refused (409) when the deploy did not
    succeed, or when ``env`` requires another environment the commit has not passed."""
    return await promotion.promote(
        db,
        settings,
        actor,
        deploy_id,
        body.env,
        title=body.title,
        description=body.description,
        draft=body.draft,
    )


@router.get(
    "/{deploy_id}/watches",
    response_model=list[Watch],
    openapi_extra=perm("deploy.read"),
)
def get_watches(deploy_id: Id, db: DB, actor: CurrentActor) -> list[dict[str, Any]]:
    """The post-deploy watches of this deploy (``watch:``), newest first: still watching,
    passed, failed (with the host and check, and the rollback it queued) or ended by a
    newer deploy."""
    deploy_views.visible_deploy(db, actor, deploy_id)
    return watch.for_deploy(db, deploy_id)


@router.post(
    "/{deploy_id}/continue",
    response_model=Deploy,
    response_model_exclude_unset=True,
    openapi_extra=perm("rollout.continue"),
)
def continue_rollout(
    deploy_id: Id, db: DB, actor: CurrentActor, request: Request
) -> dict[str, Any]:
    """Continue a gray release paused after its canary (any worker resumes it)."""
    rollouts.request(db, actor, deploy_id, "continue")
    wake_worker(request)
    return deploy_views.get(db, deploy_id)


@router.post(
    "/{deploy_id}/abort",
    response_model=Deploy,
    response_model_exclude_unset=True,
    openapi_extra=perm("rollout.abort"),
)
def abort_rollout(deploy_id: Id, db: DB, actor: CurrentActor, request: Request) -> dict[str, Any]:
    """Abort a paused or running gray release: its ``on_failure`` applies (``rollback``
    puts every switched host back, ``halt`` stops where it is)."""
    rollouts.request(db, actor, deploy_id, "abort")
    wake_worker(request)
    return deploy_views.get(db, deploy_id)


@router.post(
    "/{deploy_id}/rollback-now",
    response_model=Deploy,
    response_model_exclude_unset=True,
    openapi_extra=perm("deploy.rollback"),
)
def rollback_now(deploy_id: Id, db: DB, actor: CurrentActor, request: Request) -> dict[str, Any]:
    """Stop a paused or running gray release and put every host it switched back, whatever
    its ``on_failure`` says."""
    rollouts.request(db, actor, deploy_id, "rollback")
    wake_worker(request)
    return deploy_views.get(db, deploy_id)


@router.get("/{deploy_id}/steps", response_model=list[Step], openapi_extra=perm("deploy.read"))
def get_steps(deploy_id: Id, db: DB, actor: CurrentActor) -> list[dict[str, Any]]:
    """Every command run for this deploy, per host, with exit status and output."""
    deploy_views.visible_deploy(db, actor, deploy_id)
    return deploy_views.steps_of(db, deploy_id)
