"""The job queue on every database: concurrent workers run each job exactly once; scheduled
jobs wait for their time; queues route jobs; lost workers' jobs are taken over."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from ferryman.config.project import parse_project
from ferryman.db.models import Deploy, utcnow
from ferryman.db.session import Database
from ferryman.services import deploys, projects, queue
from ferryman.services.audit import SYSTEM
from tests.helpers import allow_local_repos
from tests.jobs.claiming import Claimer

ROOT = Path(__file__).parents[2]


def _project(db: Database) -> int:
    env = {"hosts": ["127.0.0.1:1"], "webroot": "/srv/www/q", "releases": "/srv/releases/q"}
    config = {"project": "q", "repo": "file:///nonexistent", "environments": {"staging": env}}
    allow_local_repos(db)
    project, _ = projects.apply_project(db, SYSTEM, parse_project(config))
    return project.id


def _queue_jobs(db: Database, count: int, **values: object) -> list[int]:
    """Jobs straight into the queue (the one-per-environment rule is the services' concern)."""
    project_id = _project(db)
    with db.transaction() as s:
        rows = [
            Deploy(
                project_id=project_id,
                env="staging",
                kind="deploy",
                ref="v1",
                config={},
                stages=[],
                variables={},
                **values,
            )
            for _ in range(count)
        ]
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


def test_two_worker_processes_run_each_of_500_jobs_exactly_once(db_url: str, tmp_path: Path):
    db = Database(db_url)
    db.upgrade()
    ids = _queue_jobs(db, 500)
    log = tmp_path / "ran.log"
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.jobs.claim_worker", db_url, str(log)], cwd=ROOT
        )
        for _ in range(2)
    ]
    try:
        for worker in workers:
            assert worker.wait(timeout=240) == 0
    finally:  # a worker that did not finish must not outlive the test
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=10)
    ran = [line.split() for line in log.read_text().splitlines()]
    assert sorted(int(d) for d, _ in ran) == sorted(ids)  # all of them, none twice
    assert len({pid for _, pid in ran}) == 2  # both workers took part
    with db.read() as s:
        statuses = dict(
            s.execute(select(Deploy.status, func.count()).group_by(Deploy.status)).all()
        )
    assert statuses == {"success": 500}
    db.dispose()


def test_a_scheduled_job_is_claimed_only_from_its_time_and_queues_route_jobs(db_url: str):
    db = Database(db_url)
    db.upgrade()
    [later] = _queue_jobs(db, 1, not_before=utcnow() + timedelta(hours=1))
    [beijing] = _queue_jobs(db, 1, queue="region-bj")
    assert queue.claim_next(db, "w-sh", ["region-sh"]) is None
    assert queue.claim_next(db, "w-bj", ["region-bj"]) == beijing
    assert queue.claim_next(db, "w-any") is None  # the other one is not due yet
    with db.transaction() as s:
        row = s.get(Deploy, later)
        assert row is not None, f"no deploy #{later}"
        row.not_before = utcnow() - timedelta(seconds=1)
    assert queue.claim_next(db, "w-any") == later
    db.dispose()


def test_a_job_whose_worker_stopped_heartbeating_is_taken_over_once(db_url: str):
    db = Database(db_url)
    db.upgrade()
    [job] = _queue_jobs(db, 1)
    dead, alive, third = Claimer(db, "dead"), Claimer(db, "alive"), Claimer(db, "third")
    assert dead.claim_next(lease=30) == job
    assert alive.take_over_lost(30) == []  # its lease still runs
    assert queue.renew_lease(db, job, dead.holder(job), 30)
    with db.transaction() as s:
        row = s.get(Deploy, job)
        assert row is not None, f"no deploy #{job}"
        row.lease_expires_at = utcnow() - timedelta(seconds=1)
    assert alive.take_over_lost(30) == [job]
    assert third.take_over_lost(30) == []
    assert not queue.renew_lease(db, job, dead.holder(job), 30)  # no longer the dead one's
    db.dispose()


def test_an_environment_s_queue_is_the_queue_of_its_deploys(db_url: str):
    db = Database(db_url)
    db.upgrade()
    env = {
        "hosts": ["127.0.0.1:1"],
        "webroot": "/srv/www/r",
        "releases": "/srv/releases/r",
        "queue": "region-bj",
    }
    config = {"project": "r", "repo": "file:///nonexistent", "environments": {"staging": env}}
    allow_local_repos(db)
    projects.apply_project(db, SYSTEM, parse_project(config))
    deploy = deploys.request_deploy(db, SYSTEM, "r", "staging", "v1")
    assert deploy.queue == "region-bj"
    assert queue.claim_next(db, "sh", ["default"]) is None
    assert queue.claim_next(db, "bj", ["region-bj"]) == deploy.id
    db.dispose()
