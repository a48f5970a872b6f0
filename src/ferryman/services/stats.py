"""Deploy statistics per space, project and environment, per day or week: counts, successes,
failures, rollbacks, and the median and 95th percentile of run time."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from ferryman.db.models import Deploy, Project, Space, utcnow
from ferryman.db.session import Database
from ferryman.errors import ValidationError
from ferryman.services.audit import Actor
from ferryman.services.authz import visible_space_ids

PERIODS = ("day", "week")


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile (``fraction`` in 0..1) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def period_start(ts: datetime, period: str) -> str:
    day = ts.date()
    if period == "week":
        day = day - timedelta(days=day.weekday())  # ISO weeks start on Monday
    return day.isoformat()


def deploy_stats(
    db: Database,
    actor: Actor,
    *,
    space: int | str | None = None,
    project: int | str | None = None,
    env: str | None = None,
    period: str = "day",
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    from ferryman.services.projects import find_project
    from ferryman.services.spaces import visible_space

    if period not in PERIODS:
        raise ValidationError(f"period: one of {', '.join(PERIODS)}")
    until = until or utcnow()
    since = since or until - timedelta(days=30)
    with db.read() as s:
        stmt = (  # the columns the figures need, not whole deploys (configs, stages, logs)
            select(
                Deploy.created_at,
                Deploy.env,
                Deploy.kind,
                Deploy.status,
                Deploy.started_at,
                Deploy.finished_at,
                Project.name.label("project_name"),
                Space.name.label("space_name"),
            )
            .join(Project, Project.id == Deploy.project_id)
            .join(Space, Space.id == Project.space_id)
            .where(Deploy.created_at >= since, Deploy.created_at < until)
        )
        if project is not None:
            stmt = stmt.where(Project.id == find_project(s, actor, project, "stats.read").id)
        elif space is not None:
            stmt = stmt.where(Project.space_id == visible_space(s, actor, space, "stats.read").id)
        else:
            ids = visible_space_ids(s, actor)
            if ids is not None:
                stmt = stmt.where(Project.space_id.in_(ids))
        if env is not None:
            stmt = stmt.where(Deploy.env == env)
        rows = s.execute(stmt.order_by(Deploy.created_at)).all()
    # one pass over the rows (100,000 deploys a year: 8,000 in 30 days), tallied per group
    groups: dict[tuple[str, str, str, str], _Tally] = {}
    total = _Tally()
    starts: dict[Any, str] = {}  # date → the start of its period
    for created, env_name, kind, status, started, finished, project_name, space_name in rows:
        day = created.date()
        start = starts.get(day)
        if start is None:
            start = starts[day] = period_start(created, period)
        key = (start, space_name, project_name, env_name)
        tally = groups.get(key)
        if tally is None:
            tally = groups[key] = _Tally()
        seconds = (
            (finished - started).total_seconds()
            if started and finished and status in ("success", "failed")
            else None
        )
        tally.add(kind, status, seconds)
        total.add(kind, status, seconds)
    series = [
        {"period": k[0], "space": k[1], "project": k[2], "env": k[3], **v.summary()}
        for k, v in sorted(groups.items())
    ]
    return {
        "period": period,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "series": series,
        "total": total.summary(),
    }


class _Tally:
    """The figures of one group of deploys, added one deploy at a time."""

    __slots__ = ("deploys", "durations", "failures", "rollbacks", "successes")

    def __init__(self) -> None:
        self.deploys = self.rollbacks = self.successes = self.failures = 0
        self.durations: list[float] = []

    def add(self, kind: str, status: str, seconds: float | None) -> None:
        if kind == "deploy":
            self.deploys += 1
        elif kind == "rollback":
            self.rollbacks += 1
        if status == "success":
            self.successes += 1
        elif status == "failed":
            self.failures += 1
        if seconds is not None:
            self.durations.append(seconds)

    def summary(self) -> dict[str, Any]:
        p50, p95 = median(self.durations), percentile(self.durations, 0.95)
        return {
            "deploys": self.deploys,
            "rollbacks": self.rollbacks,
            "successes": self.successes,
            "failures": self.failures,
            "median_seconds": round(p50, 3) if p50 is not None else None,
            "p95_seconds": round(p95, 3) if p95 is not None else None,
        }
