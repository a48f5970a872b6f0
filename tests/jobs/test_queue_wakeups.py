"""On PostgreSQL a worker in another process claims a queued deploy at once (the trigger of
migration 0018 notifies, the worker listens), not at its next poll — also after its listening
connection was cut. The worker here polls every minute, so only the notification can explain
a claim within seconds."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from ferryman.config.project import parse_project
from ferryman.config.settings import Settings
from ferryman.db.session import Database
from ferryman.jobs.worker import Worker
from ferryman.services import deploys, projects, queue
from ferryman.services.audit import SYSTEM
from ferryman.testing import databases

POLL = 60.0  # the worker's poll: far longer than any wait below
WAIT = 10.0
_names = itertools.count(1)


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    reason = databases.unavailable("postgresql")
    if reason:
        if os.environ.get("FERRYMAN_REQUIRE_DATABASES", "") not in ("", "0", "no"):
            pytest.fail(reason)
        pytest.skip(reason)
    url = databases.create("postgresql", tmp_path)
    migrated = Database(url)
    migrated.upgrade()
    migrated.dispose()  # its connections closed now, not left to the collector
    yield url
    databases.drop(url)


class WorkerThread:
    """A worker with its own engine and event loop (as a worker process would have), whose
    runner only notes when it was handed each deploy."""

    def __init__(self, url: str, settings: Settings, queues: list[str] | None = None) -> None:
        self.db = Database(url)
        self.claimed: dict[int, float] = {}
        self.loop = asyncio.new_event_loop()
        slow = dataclasses.replace(settings, worker_poll_seconds=POLL)

        async def runner(db: Database, _settings: Settings, deploy_id: int, name: str) -> str:
            self.claimed[deploy_id] = time.monotonic()
            await asyncio.to_thread(queue.finish_if_held, db, deploy_id, name, "success", None)
            return "success"

        self.worker = Worker(self.db, slow, concurrency=1, queues=queues, runner=runner)
        # the loop runs until both the worker's run and its stop are done, as `ferryman
        # worker` awaits both: run() returns as soon as stop() has begun, and a loop that
        # ended with it would leave stop() waiting for a deploy's last write for ever
        self.thread = threading.Thread(target=self.loop.run_forever)

    def __enter__(self) -> WorkerThread:
        self.thread.start()
        self.running = asyncio.run_coroutine_threadsafe(self.worker.run(), self.loop)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.worker.stop(grace=0), self.loop).result(30)
        self.running.result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()
        self.db.dispose()

    def wait_for(self, deploy_id: int) -> float:
        deadline = time.monotonic() + WAIT
        while deploy_id not in self.claimed:
            assert time.monotonic() < deadline, f"deploy {deploy_id} not claimed in {WAIT}s"
            time.sleep(0.01)
        return self.claimed[deploy_id]


def _project(db: Database) -> str:
    name = f"wake{next(_names)}"
    env = {"hosts": ["127.0.0.1:1"], "webroot": f"/srv/www/{name}", "releases": f"/srv/rel/{name}"}
    config = {
        "project": name,
        "repo": "ssh://git@127.0.0.1/x.git",
        "environments": {"staging": env},
    }
    projects.apply_project(db, SYSTEM, parse_project(config))
    return name


def _queue(db: Database, name: str) -> int:
    """A deploy queued by "the server" (its own engine; nothing wakes the worker directly)."""
    return deploys.request_deploy(db, SYSTEM, name, "staging", "v1").id


def _listening(db: Database) -> list[int]:
    """The backends of this database that are listening for queued deploys."""
    with db.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND query LIKE 'LISTEN ferryman_queued%'"
            )
        ).all()
    return [int(r[0]) for r in rows]


def _until(check: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_worker_in_another_process_claims_a_queued_deploy_at_once(pg_url, settings):
    server = Database(pg_url)
    with WorkerThread(pg_url, settings) as worker:
        _until(lambda: _listening(server), "the worker never listened")
        lags = []
        for _ in range(5):
            name = _project(server)
            asked = time.monotonic()
            deploy_id = _queue(server, name)
            queued = time.monotonic()
            lags.append((queued - asked, worker.wait_for(deploy_id) - queued))
    server.dispose()
    print(
        "request (s) / claimed after the request returned (s): "
        + ", ".join(f"{a:.3f}/{b:.3f}" for a, b in lags)
    )


def test_a_worker_whose_listening_connection_is_cut_listens_again(pg_url, settings):
    server = Database(pg_url)
    with WorkerThread(pg_url, settings) as worker:
        _until(lambda: _listening(server), "the worker never listened")
        first = _listening(server)
        with server.engine.connect() as conn:
            for pid in first:
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            conn.commit()
        _until(
            lambda: _listening(server) and not set(_listening(server)) & set(first),
            "the worker did not listen again",
        )
        deploy_id = _queue(server, _project(server))
        worker.wait_for(deploy_id)
    server.dispose()


def test_a_worker_is_not_woken_for_another_queue(pg_url, settings):
    server = Database(pg_url)
    with WorkerThread(pg_url, settings, queues=["region-b"]) as worker:
        _until(lambda: _listening(server), "the worker never listened")
        deploy_id = _queue(server, _project(server))  # the default queue: not this worker's
        time.sleep(1.0)
        assert deploy_id not in worker.claimed
    server.dispose()
