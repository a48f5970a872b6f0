"""Metric canary analysis as records: what a running deploy measured in each interval
(written fenced by the worker that holds it), read back for the API, the CLI and the
console — so a paused rollout shows the analysis so far — and the Prometheus address of a
project checked against the outbound policy when the project is applied."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from ferryman.config.project import ProjectConfig
from ferryman.db.models import AnalysisMeasurement, Deploy
from ferryman.db.session import Database
from ferryman.domain.analysis import Measurement
from ferryman.errors import ConfigError
from ferryman.outbound import Outbound, Refused, Unresolved
from ferryman.said import said
from ferryman.services import deploy_records
from ferryman.services.audit import Actor

MAX_ROWS = 20_000  # every measurement of the largest analysis (1000 intervals, 20 metrics)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def record(
    db: Database, deploy_id: int, rows: Sequence[Measurement], owner: str | None = None
) -> None:
    """One interval's measurements, written only while ``owner`` holds the deploy."""
    with db.transaction() as s:
        deploy_records.fence(s, deploy_id, owner)
        for m in rows:
            s.add(
                AnalysisMeasurement(
                    deploy_id=deploy_id,
                    interval_no=m.interval,
                    metric=m.metric[:64],
                    canary=_finite(m.canary),
                    baseline=_finite(m.baseline),
                    verdict=m.verdict,
                    detail=m.detail[:500],
                )
            )


def _metrics_of(deploy: Deploy) -> list[dict[str, str]]:
    """The metrics the deploy's configuration asks for (name, query, compare)."""
    from ferryman.config.project import parse_project
    from ferryman.errors import FerrymanError

    try:
        config = parse_project(deploy.config or {})
        strategy = config.environment(deploy.env).strategy
    except FerrymanError:
        return []
    if strategy is None or strategy.analysis is None:
        return []
    return [m.model_dump() for m in strategy.analysis.metrics]


def of_deploy(db: Database, actor: Actor, deploy_id: int) -> dict[str, Any]:
    """The analysis of a deploy so far: its settings and every measurement, oldest first."""
    from ferryman.services.deploy_views import visible_deploy

    deploy = visible_deploy(db, actor, deploy_id)
    with db.read() as s:
        rows = s.scalars(
            select(AnalysisMeasurement)
            .where(AnalysisMeasurement.deploy_id == deploy_id)
            .order_by(AnalysisMeasurement.id)
            .limit(MAX_ROWS)
        ).all()
        measurements = [
            {
                "interval": r.interval_no,
                "metric": r.metric,
                "canary": r.canary,
                "baseline": r.baseline,
                "verdict": r.verdict,
                "detail": r.detail,
                "measured_at": r.measured_at.isoformat(),
            }
            for r in rows
        ]
    return {
        "deploy_id": deploy_id,
        "status": deploy.status,
        "metrics": _metrics_of(deploy),
        "measurements": measurements,
    }


def check_destinations(config: ProjectConfig, out: Outbound) -> None:
    """Refuse a Prometheus address the outbound policy refuses (internal destinations
    unless a superuser allows them); a name that does not resolve now is checked again
    before every query."""
    errors = []
    for env_name, env in config.environments.items():
        analysis = env.strategy.analysis if env.strategy is not None else None
        if analysis is None:
            continue
        what = f"environments/{env_name}/strategy/analysis/prometheus"
        try:
            out.check_url(analysis.prometheus, what)
        except Unresolved:
            continue
        except Refused as exc:
            errors.append(exc.message)
    if errors:
        raise ConfigError(
            said("project %(project)s asks for what it may not", project=config.project), errors
        )
