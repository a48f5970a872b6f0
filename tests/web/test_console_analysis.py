"""The console of a gray release with metric canary analysis draws one small chart per metric
(canary and baseline per interval, each interval's verdict) and says why the rollout paused —
from the measurements the run recorded, in either language."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from ferryman.db.models import Deploy
from ferryman.domain.analysis import Measurement
from ferryman.services import analysis
from ferryman.web import charts
from tests.api.world import SPACE, World, build_world
from tests.helpers import web_session

ANALYSIS = {
    "prometheus": "http://127.0.0.1:9/",  # never asked: the measurements are recorded below
    "interval": "1s",
    "duration": "5s",
    "metrics": [
        {
            "name": "error-rate",
            "query": 'sum(rate(errors{instance=~"{HOSTS_RE}"}[1m]))',
            "compare": "canary <= baseline * 1.5 + 0.001",
        },
        {
            "name": "p99",
            "query": 'max(latency{instance=~"{HOSTS_RE}"})',
            "compare": "canary <= baseline * 1.2",
        },
    ],
    "failure_limit": 1,
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("analysis-console"))


def _paused_analysed_deploy(world: World) -> int:
    deploy_id = world.queued_deploy()
    with world.db.transaction() as s:
        deploy = s.get(Deploy, deploy_id)
        assert deploy is not None
        config = dict(deploy.config)
        env = dict(config["environments"][deploy.env])
        env["strategy"] = {"canary": 1, "pause": "10m", "analysis": ANALYSIS}
        config["environments"] = {**config["environments"], deploy.env: env}
        s.execute(
            update(Deploy)
            .where(Deploy.id == deploy_id)
            .values(
                status="paused",
                config=config,
                rollout={
                    "batches": [["10.9.0.1:22"], ["10.9.0.2:22"]],
                    "next_batch": 1,
                    "failed": {},
                    "healthy": ["10.9.0.1:22"],
                    "state": "paused",
                    "pause_reason": "Prometheus did not answer: connection refused",
                },
            )
        )
    values = [  # interval, error-rate canary/baseline/verdict, p99 canary/baseline/verdict
        (1, 0.01, 0.01, "pass", 0.20, 0.21, "pass"),
        (2, 0.05, 0.01, "fail", 0.22, 0.20, "pass"),
        (3, None, 0.01, "error", 0.25, 0.20, "fail"),
    ]
    for i, ec, eb, ev, pc, pb, pv in values:
        analysis.record(
            world.db,
            deploy_id,
            [
                Measurement(i, "error-rate", ec, eb, ev, "no data" if ec is None else ""),
                Measurement(i, "p99", pc, pb, pv, ""),
            ],
        )
    return deploy_id


def _browser(world: World, language: str) -> TestClient:
    client: TestClient = web_session(
        world.settings, world.db, world.actors["reporter"].username, language
    )[0]
    return client


def test_the_console_draws_each_metric_and_says_why_the_rollout_paused(world):
    deploy_id = _paused_analysed_deploy(world)
    page = _browser(world, "en").get(f"/s/{SPACE}/deploys/{deploy_id}").text
    shown = page.split('id="analysis"', 1)[1].split("</div>", 1)[0]
    error_rate = shown.split('data-metric="error-rate"', 1)[1].split("</figure>", 1)[0]
    assert error_rate.count('class="verdict v-pass"') == 1
    assert error_rate.count('class="verdict v-fail"') == 1
    assert error_rate.count('class="verdict v-error"') == 1
    assert error_rate.count('class="canary"') == 1  # intervals 1-2, then no value
    assert "1 of 3 intervals failed" in error_rate
    assert "canary &lt;= baseline * 1.5 + 0.001" in error_rate
    assert 'data-metric="p99"' in shown
    assert "Paused: Prometheus did not answer: connection refused" in page

    chinese = _browser(world, "zh-CN").get(f"/s/{SPACE}/deploys/{deploy_id}").text
    assert "金丝雀指标分析" in chinese and "3 个周期中有 1 个未通过" in chinese


def test_a_console_without_analysis_has_no_chart(world):
    page = _browser(world, "en").get(f"/s/{SPACE}/deploys/{world.queued_deploy()}").text
    assert 'id="analysis"' not in page


def test_a_line_breaks_where_an_interval_had_no_value_and_stays_inside_the_chart():
    drawn = charts.analysis(
        [{"name": "m", "compare": "canary <= baseline"}],
        [
            {"interval": 1, "metric": "m", "canary": 1.0, "baseline": 5.0, "verdict": "pass"},
            {"interval": 2, "metric": "m", "canary": None, "baseline": 4.0, "verdict": "error"},
            {"interval": 3, "metric": "m", "canary": 9.0, "baseline": 3.0, "verdict": "fail"},
            {"interval": 4, "metric": "m", "canary": 2.0, "baseline": 2.0, "verdict": "pass"},
            {"interval": 1, "metric": "other", "canary": 1e9, "baseline": 0, "verdict": "x"},
        ],
    )[0]
    assert len(drawn["canary"]) == 2 and len(drawn["baseline"]) == 1
    points = [p.split(",") for line in drawn["canary"] + drawn["baseline"] for p in line.split()]
    for x, y in points:
        assert 0 <= float(x) <= drawn["width"] and 0 <= float(y) <= drawn["height"]
    assert (drawn["failed"], drawn["intervals"], drawn["top"]) == (1, 4, 9.0)
