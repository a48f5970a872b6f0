"""Canary analysis records on SQLite, PostgreSQL and MariaDB: what a running deploy measured
is written only by the worker that holds it, and read back whole and in order — values as
doubles, no value where there was none or it was not finite."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from ferryman.config.project import parse_project
from ferryman.db.session import Database
from ferryman.domain.analysis import Measurement
from ferryman.errors import NotFound, OwnershipLost
from ferryman.outbound import parse_allow
from ferryman.services import analysis, deploys, projects
from tests.conftest import NET, set_approval
from tests.helpers import ADMIN, member
from tests.jobs.claiming import Claimer

QUERY = 'sum(rate(http_requests_total{instance=~"{HOSTS_RE}"}[1m]))'


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database(db_url)
    db.upgrade()
    set_approval(db, "production", False)
    yield db
    db.dispose()


def _claimed_deploy(db: Database) -> tuple[int, str]:
    config = {
        "project": "shop",
        "repo": f"ssh://git@{NET}.96/shop.git",  # never reached: nothing runs
        "environments": {
            "production": {
                "hosts": ["10.0.0.1", "10.0.0.2"],
                "webroot": "/srv/www/shop",
                "releases": "/srv/releases/shop",
                "strategy": {
                    "canary": 1,
                    "analysis": {
                        "prometheus": f"http://{NET}.95:19095",  # never asked
                        "metrics": [{"name": "errors", "query": QUERY, "compare": "canary < 1"}],
                    },
                },
            }
        },
    }
    db.outbound_allow = parse_allow(f"{NET}.0/24")  # type: ignore[attr-defined]
    projects.apply_project(db, ADMIN, parse_project(config))
    requested = deploys.request_deploy(db, ADMIN, "shop", "production", "main")
    worker_a = Claimer(db, "worker-a")
    assert worker_a.claim_next() == requested.id
    return requested.id, worker_a.holder(requested.id)


def test_measurements_are_written_by_the_holder_only_and_read_back_in_order(database):
    deploy_id, holder = _claimed_deploy(database)
    first = [
        Measurement(1, "errors", 0.25, 0.125, "pass"),
        Measurement(1, "p99", math.inf, None, "fail", "canary <= baseline * 1.2"),
    ]
    analysis.record(database, deploy_id, first, owner=holder)
    with pytest.raises(OwnershipLost):
        analysis.record(database, deploy_id, [Measurement(2, "errors", 9.0, 1.0, "fail")], "x")
    analysis.record(database, deploy_id, [Measurement(2, "errors", None, None, "error", "no data")])

    shown = analysis.of_deploy(database, ADMIN, deploy_id)
    assert shown["metrics"] == [{"name": "errors", "query": QUERY, "compare": "canary < 1"}]
    assert [
        (m["interval"], m["metric"], m["canary"], m["baseline"], m["verdict"], m["detail"])
        for m in shown["measurements"]
    ] == [
        (1, "errors", 0.25, 0.125, "pass", ""),
        (1, "p99", None, None, "fail", "canary <= baseline * 1.2"),
        (2, "errors", None, None, "error", "no data"),
    ]


def test_the_analysis_of_a_deploy_is_hidden_from_people_outside_its_space(database):
    deploy_id, _ = _claimed_deploy(database)
    stranger = member(database, "mallory")
    with pytest.raises(NotFound):
        analysis.of_deploy(database, stranger, deploy_id)
