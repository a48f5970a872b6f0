"""A gray release's metric canary analysis so far: ``GET /deploys/{id}/analysis``."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ferryman.api.deps import DB, CurrentActor, Id, perm
from ferryman.api.views import DeployStatus
from ferryman.services import analysis

router = APIRouter(prefix="/deploys", tags=["deploys"])


class AnalysisMetric(BaseModel):
    name: str
    query: str = Field(description="PromQL, {HOSTS_RE} as written")
    compare: str = Field(description="e.g. canary <= baseline * 1.2")


class AnalysisMeasurement(BaseModel):
    interval: int = Field(description="1 for the first measurement, one per interval")
    metric: str
    canary: float | None = Field(description="the canary's value (null: none, or not finite)")
    baseline: float | None = Field(description="the old release's hosts' value")
    verdict: Literal["pass", "fail", "error"]
    detail: str = Field(description="why it failed or could not be judged")
    measured_at: str


class DeployAnalysis(BaseModel):
    deploy_id: int
    status: DeployStatus
    metrics: list[AnalysisMetric]
    measurements: list[AnalysisMeasurement]


@router.get(
    "/{deploy_id}/analysis",
    response_model=DeployAnalysis,
    openapi_extra=perm("deploy.read"),
)
def deploy_analysis(deploy_id: Id, db: DB, actor: CurrentActor) -> dict[str, Any]:
    """The metric canary analysis of a gray release so far (``strategy.analysis``): the
    metrics it judges and every measurement, oldest first — what a paused rollout was
    judged on, and what the console charts (canary against baseline per metric)."""
    return analysis.of_deploy(db, actor, deploy_id)
