"""Post-deploy watches as the web UI shows them (read only): the watches of a deploy on its
console, and the newest watch of each environment on its project's page. The caller has
already checked that the viewer sees the deploy or the project (``deploy_views.visible_deploy``,
``projects.find_project``); the rows are written by ``services/watch.py`` alone."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from ferryman.db.models import DeployWatch
from ferryman.db.session import Database
from ferryman.domain.statuses import WatchStatus


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _view(row: DeployWatch) -> dict[str, Any]:
    host, _, why = row.reason.partition(": ") if row.status == WatchStatus.FAILED else ("", "", "")
    return {
        "id": row.id,
        "deploy_id": row.deploy_id,
        "env": row.env,
        "release": row.release,
        "status": row.status,
        "on_failure": row.on_failure,
        "interval": row.interval,
        "deadline": _iso(row.deadline),
        "checks": row.checks,
        "reason": row.reason,
        "failed_host": host,
        "failed_why": why,
        "rollback_id": row.rollback_id,
        "started_at": _iso(row.created_at),
        "ended_at": _iso(row.ended_at),
    }


def of_deploy(db: Database, deploy_id: int) -> dict[str, Any] | None:
    """The newest watch of a deploy (a deploy has at most one), or None."""
    with db.read() as s:
        row = s.scalar(
            select(DeployWatch)
            .where(DeployWatch.deploy_id == deploy_id)
            .order_by(DeployWatch.id.desc())
            .limit(1)
        )
        return _view(row) if row is not None else None


def newest_by_env(db: Database, project_id: int) -> dict[str, dict[str, Any]]:
    """The newest watch of each environment of a project: what watches it now, or how the
    last watch ended."""
    with db.read() as s:
        newest = (
            select(func.max(DeployWatch.id))
            .where(DeployWatch.project_id == project_id)
            .group_by(DeployWatch.env)
        )
        rows = s.scalars(select(DeployWatch).where(DeployWatch.id.in_(newest))).all()
        return {row.env: _view(row) for row in rows}
