"""Deploys: list, one deploy, its log lines and per-host steps."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from ferryman.api.deps import DB, CurrentActor, perm, wake_worker
from ferryman.api.schemas import ReasonBody, RetryBody
from ferryman.services import deploy_views, deploys, rollouts

router = APIRouter(prefix="/deploys", tags=["deploys"])


@router.get("", openapi_extra=perm("deploy.read"))
def list_deploys(
    db: DB,
    actor: CurrentActor,
    project: str | None = Query(None, max_length=130),
    space: str | None = Query(None, max_length=64),
    limit: int = Query(50, ge=1, le=500),
) -> list[dict[str, Any]]:
    return deploy_views.list_deploys(db, actor, project, limit, space)


@router.get("/{deploy_id}", openapi_extra=perm("deploy.read"))
def get_deploy(deploy_id: int, db: DB, actor: CurrentActor) -> dict[str, Any]:
    deploy_views.visible_deploy(db, actor, deploy_id)
    return deploy_views.get(db, deploy_id)


@router.get("/{deploy_id}/logs", openapi_extra=perm("deploy.read"))
def get_logs(
    deploy_id: int,
    db: DB,
    actor: CurrentActor,
    after: int = Query(0, ge=0),
    limit: int = Query(1000, ge=1, le=5000),
) -> dict[str, Any]:
    """The same page as ``/log`` (kept for the CLI and scripts of the first release)."""
    return deploy_views.log_page(db, actor, deploy_id, after, limit)


@router.post("/{deploy_id}/cancel", openapi_extra=perm("deploy.cancel"))
def cancel_deploy(
    deploy_id: int, db: DB, actor: CurrentActor, body: ReasonBody | None = None
) -> dict[str, Any]:
    """Stop a queued deploy before it starts, or a running one at its next safe point.
    Your own deploys as a developer; anyone's as a master."""
    deploys.request_cancel(db, actor, deploy_id, body.reason if body else "")
    return deploy_views.get(db, deploy_id)


@router.post("/{deploy_id}/retry", status_code=201, openapi_extra=perm("deploy.direct"))
def retry_deploy(
    deploy_id: int,
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


@router.post("/{deploy_id}/continue", openapi_extra=perm("rollout.continue"))
def continue_rollout(
    deploy_id: int, db: DB, actor: CurrentActor, request: Request
) -> dict[str, Any]:
    """Continue a gray release paused after its canary (any worker resumes it)."""
    rollouts.request(db, actor, deploy_id, "continue")
    wake_worker(request)
    return deploy_views.get(db, deploy_id)


@router.post("/{deploy_id}/abort", openapi_extra=perm("rollout.abort"))
def abort_rollout(deploy_id: int, db: DB, actor: CurrentActor, request: Request) -> dict[str, Any]:
    """Abort a paused or running gray release: its ``on_failure`` applies (``rollback``
    puts every switched host back, ``halt`` stops where it is)."""
    rollouts.request(db, actor, deploy_id, "abort")
    wake_worker(request)
    return deploy_views.get(db, deploy_id)


@router.post("/{deploy_id}/rollback-now", openapi_extra=perm("deploy.rollback"))
def rollback_now(deploy_id: int, db: DB, actor: CurrentActor, request: Request) -> dict[str, Any]:
    """Stop a paused or running gray release and put every host it switched back, whatever
    its ``on_failure`` says."""
    rollouts.request(db, actor, deploy_id, "rollback")
    wake_worker(request)
    return deploy_views.get(db, deploy_id)


@router.get("/{deploy_id}/steps", openapi_extra=perm("deploy.read"))
def get_steps(deploy_id: int, db: DB, actor: CurrentActor) -> list[dict[str, Any]]:
    """Every command run for this deploy, per host, with exit status and output."""
    deploy_views.visible_deploy(db, actor, deploy_id)
    return deploy_views.steps_of(db, deploy_id)
