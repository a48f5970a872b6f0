"""The audit log and deploy statistics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from ferryman.api.config_views import AuditEntry, Stats
from ferryman.api.deps import DB, MAX_ID, CurrentActor, perm
from ferryman.api.paging import IsoTime
from ferryman.services import audit_views, stats

router = APIRouter()


@router.get(
    "/audit", response_model=list[AuditEntry], tags=["audit"], openapi_extra=perm("audit.read")
)
def audit(
    db: DB,
    actor: CurrentActor,
    space: str | None = Query(None, max_length=64),
    actor_name: str | None = Query(None, alias="actor", max_length=64),
    project: str | None = Query(None, max_length=64),
    action: str | None = Query(None, max_length=64),
    since: IsoTime = None,
    until: IsoTime = None,
    before: int | None = Query(
        None, ge=1, le=MAX_ID, description="page: entries older than this id"
    ),
    limit: int = Query(100, ge=1, le=1000),
) -> list[dict[str, Any]]:
    """Newest first. Without ``space``: every space where you are master or owner (all for
    superusers). Nothing can edit or delete these entries."""
    return audit_views.read_audit(
        db,
        actor,
        space=space,
        who=actor_name,
        project=project,
        action=action,
        since=since,
        until=until,
        limit=limit,
        before_id=before,
    )


@router.get("/stats", response_model=Stats, tags=["stats"], openapi_extra=perm("stats.read"))
def deploy_stats(
    db: DB,
    actor: CurrentActor,
    space: str | None = Query(None, max_length=64),
    project: str | None = Query(None, max_length=130),
    env: str | None = Query(None, max_length=64),
    period: str = Query("day", pattern="^(day|week)$"),
    since: IsoTime = None,
    until: IsoTime = None,
) -> dict[str, Any]:
    """Deploys, successes, failures, rollbacks, median and p95 duration per period."""
    return stats.deploy_stats(
        db, actor, space=space, project=project, env=env, period=period, since=since, until=until
    )
