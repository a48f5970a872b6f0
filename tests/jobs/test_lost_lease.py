"""Ownership of a running deploy (issue 16, causes 1 and 9): a worker never takes over its own
deploy; a run whose deploy was taken over stops before its next host action and writes no
outcome; and a worker with every slot busy still takes a dead worker's deploy over within
the lease."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from ferryman.config.settings import Settings, load_settings
from ferryman.db.models import Deploy, Lock, utcnow
from ferryman.db.session import Database
from ferryman.jobs.deploy_job import run_deploy
from ferryman.jobs.recover_job import recover
from ferryman.jobs.worker import Worker
from ferryman.services import deploy_views, deploys, queue
from tests.helpers import ADMIN, Repo, apply, deploy, live, project_config, release_dirs, unique
from tests.jobs.claiming import Claimer
from tests.jobs.test_queue import _queue_jobs

LEASE = 3.0


def _expire(db: Database, deploy_id: int) -> None:
    with db.transaction() as s:
        s.execute(
            update(Deploy)
            .where(Deploy.id == deploy_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


def _row(db: Database, deploy_id: int) -> tuple[str, str]:
    with db.read() as s:
        row = s.execute(select(Deploy.status, Deploy.worker).where(Deploy.id == deploy_id)).one()
        return str(row[0]), str(row[1])


def _wait(what: str, seconds: float, done: Any) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _short_lease(settings: Settings) -> Settings:
    return load_settings(
        {
            "FERRYMAN_HOME": str(settings.home),
            "FERRYMAN_LOCK_LEASE": str(LEASE),
            "FERRYMAN_WORKER_POLL": "0.1",
            "FERRYMAN_SANDBOX_UID_BASE": str(settings.sandbox_uid_base),  # this worker's uids
        }
    )


# --- the queue on every database ------------------------------------------------------------


@pytest.fixture
def migrated(db_url: str) -> Iterator[Database]:
    """A migrated database on each backend, disposed of afterwards: its connections are
    closed then, not left to the collector."""
    db = Database(db_url)
    db.upgrade()
    yield db
    db.dispose()


def test_take_over_lost_never_takes_the_worker_s_own_deploy(migrated: Database):
    db = migrated
    [job] = _queue_jobs(db, 1)
    me, other = Claimer(db, "me"), Claimer(db, "other")
    assert me.claim_next(lease=LEASE) == job
    _expire(db, job)  # e.g. a database outage longer than the lease
    assert me.take_over_lost(LEASE) == []
    assert _row(db, job) == ("running", "me")
    assert queue.renew_lease(db, job, me.holder(job), LEASE)  # the database is back: still its own
    _expire(db, job)
    assert other.take_over_lost(LEASE) == [job]
    assert _row(db, job) == ("running", "other")
    assert not queue.renew_lease(db, job, me.holder(job), LEASE)  # the first run learns it lost it


def test_only_the_deploy_s_owner_writes_its_outcome(migrated: Database):
    db = migrated
    [job] = _queue_jobs(db, 1)
    me, other = Claimer(db, "me"), Claimer(db, "other")
    assert me.claim_next(lease=LEASE) == job
    _expire(db, job)
    assert other.take_over_lost(LEASE) == [job]
    assert not queue.finish_if_held(db, job, me.holder(job), "success", None)
    assert _row(db, job) == ("running", "other")
    error = {"code": "worker_lost", "message": "gone", "details": {}}
    assert queue.finish_if_held(db, job, other.holder(job), "failed", error)
    assert _row(db, job) == ("failed", "other")
    assert not queue.finish_if_held(db, job, other.holder(job), "success", None)  # once only
    with db.read() as s:
        assert s.scalar(select(Deploy.error).where(Deploy.id == job)) == error


# --- on the real fleet ----------------------------------------------------------------------


@pytest.mark.fleet
def test_a_worker_never_recovers_its_own_deploy_whose_lease_ran_out(db, settings, targets):
    settings = _short_lease(settings)
    [job] = _queue_jobs(db, 1)
    worker = Worker(db, settings)
    assert queue.claim_next(db, worker.name, lease=LEASE) == job
    _expire(db, job)
    asyncio.run(worker._reap())
    assert worker._recovering == {}
    assert _row(db, job) == ("running", worker.name)


@pytest.mark.fleet
def test_a_worker_with_every_slot_busy_takes_a_dead_worker_s_deploy_over_within_the_lease(
    db, settings, git_host, targets, tmp_path
):
    settings = _short_lease(settings)
    repo = Repo(git_host, tmp_path, unique("reap"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, targets[:2]))
    first = deploy(db, settings, repo.name, "v1")
    repo.commit({"index.html": "v2\n"}, tag="v2")
    dead = deploys.request_deploy(db, ADMIN, repo.name, "production", "v2")
    assert queue.claim_next(db, "dead-worker", lease=LEASE) == dead.id  # never heartbeats
    died = time.monotonic()
    [busy] = _queue_jobs(db, 1)  # another project's deploy, filling the only slot
    release = threading.Event()

    async def slow(db: Database, settings: Settings, deploy_id: int, holder: str) -> str:
        await asyncio.to_thread(release.wait, 60)
        await asyncio.to_thread(queue.finish_if_held, db, deploy_id, holder, "success", None)
        return "success"

    loop = asyncio.new_event_loop()
    worker = Worker(db, settings, concurrency=1, runner=slow)
    thread = threading.Thread(target=loop.run_until_complete, args=(worker.run(),))
    thread.start()
    try:
        _wait("the slot to fill", 10, lambda: _row(db, busy)[0] == "running")
        _wait("the take-over", 30, lambda: _row(db, dead.id)[0] != "running")
        took = time.monotonic() - died
        assert _row(db, busy)[0] == "running"  # the slot never freed
    finally:
        release.set()
        asyncio.run_coroutine_threadsafe(worker.stop(grace=30), loop)
        thread.join(60)  # ``run()`` returns once stopped and drained
        assert not thread.is_alive()
        loop.close()
    result = deploy_views.get(db, dead.id)
    assert result["status"] == "failed" and result["error"]["code"] == "worker_lost", result
    assert result["error"]["details"]["recovered_by"] == worker.name
    # lease, then at most one reaper period, then the recovery itself (probe, clean up)
    assert took < LEASE + LEASE / 3 + 5, took
    for host in targets[:2]:
        assert live(host, repo.name) == first["release"]


@pytest.mark.fleet
def test_a_run_whose_deploy_was_taken_over_stops_before_the_switch_and_writes_no_outcome(
    db, settings, git_host, targets, tmp_path
):
    settings = _short_lease(settings)
    hosts = targets[:2]
    repo = Repo(git_host, tmp_path, unique("lost"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, hosts))
    first = deploy(db, settings, repo.name, "v1")
    marker = f"/srv/{repo.name}.post_release"
    slow = {"pre_release": "sleep 4\n", "post_release": f"touch {marker}\n"}
    apply(db, project_config(repo.name, repo.url, hosts, tasks=slow))
    repo.commit({"index.html": "v2\n"}, tag="v2")
    queued = deploys.request_deploy(db, ADMIN, repo.name, "production", "v2")
    first_worker, other_worker = Claimer(db, "first-worker"), Claimer(db, "other-worker")
    assert first_worker.claim_next(lease=LEASE) == queued.id
    outcome: list[str] = []
    runner = threading.Thread(
        target=lambda: outcome.append(
            asyncio.run(run_deploy(db, settings, queued.id, first_worker.holder(queued.id)))
        )
    )
    runner.start()
    _wait(
        "pre_release to start",
        60,
        lambda: any(
            s["name"] == "pre_release" and s["status"] == "running"
            for s in deploy_views.get(db, queued.id)["stages"]
        ),
    )
    _expire(db, queued.id)  # as if the first worker's heartbeats had stopped getting through
    assert other_worker.take_over_lost(LEASE) == [queued.id]
    runner.join(60)
    assert outcome == ["lost"]
    # it stopped before its next host action: no host switched, no post_release ran, and it
    # undid nothing itself (its release dirs are left for the new owner) and wrote no outcome
    assert _row(db, queued.id) == ("running", "other-worker")
    new_release = deploy_views.get(db, queued.id)["release"]
    for host in hosts:
        assert live(host, repo.name) == first["release"]
        assert not host.path(marker).exists()
        assert new_release in release_dirs(host, repo.name)
    with db.read() as s:
        assert s.query(Lock).count() == 0  # its own lock released, nothing else

    assert asyncio.run(recover(db, settings, queued.id, other_worker.holder(queued.id)))
    result = deploy_views.get(db, queued.id)
    assert result["status"] == "failed" and result["error"]["code"] == "worker_lost", result
    for host in hosts:
        assert live(host, repo.name) == first["release"]
        assert release_dirs(host, repo.name) == [first["release"]]
