"""A running worker prunes by itself: with FERRYMAN_LOG_RETENTION set, the log of a deploy
that ended before it goes, the newest deploy's stays, and a second worker started beside it
does not run the hour's pruning again."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select, update

from ferryman.db.models import AuditEntry, Deploy, LogLine, utcnow
from ferryman.jobs.worker import Worker
from ferryman.services import retention
from tests.api.world import build_world


def _wait(what: str, seconds: float, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.1)


def test_a_worker_prunes_old_logs_once_an_hour_and_a_second_worker_leaves_it(tmp_path):
    world = build_world(tmp_path)
    settings = dataclasses.replace(world.settings, log_retention=timedelta(days=30))
    old, newest = world.queued_deploy(), world.queued_deploy()
    ended = utcnow() - timedelta(days=40)
    with world.db.transaction() as s:
        s.execute(
            update(Deploy).where(Deploy.id == old).values(status="success", finished_at=ended)
        )
        s.execute(
            update(Deploy).where(Deploy.id == newest).values(status="failed", finished_at=ended)
        )
        project = s.scalar(select(Deploy.project_id).where(Deploy.id == newest))
        s.execute(update(Deploy).where(Deploy.id == old).values(project_id=project))
        s.add_all(LogLine(deploy_id=d, text=f"line {i}") for d in (old, newest) for i in range(5))

    def lines(deploy_id: int) -> list[str]:
        with world.db.read() as s:
            return list(s.scalars(select(LogLine.text).where(LogLine.deploy_id == deploy_id)))

    loop = asyncio.new_event_loop()
    worker = Worker(world.db, settings, concurrency=1)
    thread = threading.Thread(target=loop.run_until_complete, args=(worker.run(),))
    thread.start()
    try:
        _wait("the pruning", 30, lambda: len(lines(old)) == 1)
    finally:
        asyncio.run_coroutine_threadsafe(worker.stop(grace=5), loop)
        thread.join(30)
        loop.close()
    assert not thread.is_alive()
    assert lines(old)[0].startswith("The log of this deploy was removed")
    assert lines(newest) == [f"line {i}" for i in range(5)]
    assert not retention.claim_run(world.db)  # the hour's run is taken: a second worker skips
    with world.db.read() as s:
        audit = list(s.scalars(select(AuditEntry).where(AuditEntry.action == "retention.prune")))
    assert [(a.actor, a.detail["deploys"], a.detail["lines"]) for a in audit] == [("system", 1, 5)]
