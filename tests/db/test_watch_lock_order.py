"""Deleting a project while a worker records that its post-deploy watch failed, on PostgreSQL
and MariaDB. The failure locks the watch's row and queues a rollback (whose foreign key locks
the project's row); the deletion locks the project's row and then ends the project's watches.
Both take the one lock order (``docs/architecture.md``, "Databases"): the project's row
first — the failure takes it shared before the watch's — so one waits for the other and then
sees what it did. Taken the other way round, each would hold one row and wait for the other's:
the database kills one, and the deletion answers 503 or the worker's write is lost.

Every trial forces the dangerous interleaving, as ``test_project_lock_order.py`` does: a
statement hook holds each side just after its first row lock until the other has taken its
own first lock (or a moment has passed, when the other already waits for the same row)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select, update

from ferryman.config.project import parse_project
from ferryman.db.models import Deploy, DeployWatch, Project
from ferryman.domain.statuses import DEPLOY_ACTIVE, DeployStatus
from ferryman.services import deploy_records, deploys, projects, queue, watch
from ferryman.services.audit import SYSTEM
from tests.api.world import SPACE, World, fresh
from tests.db.lock_crossing import Crossing, world_on_a_server_database

P = "/api/v1"
TRIALS = 6  # each forces the crossing; bounded by DEADLINE too
DEADLINE = 60.0  # seconds for all trials (a loaded machine still gets 2)
HOLD = 1.0  # how long a side that holds its first lock waits for the other's
HOST = "127.0.0.2:1"  # the world's staging host: named in records, never reached

# a SELECT that locks rows of projects or watches (the dialects' spellings of it)
LOCKING = re.compile(
    r"^\s*SELECT\b.*\bFROM (projects|deploy_watches)\b.*"
    r"\b(FOR (NO KEY )?UPDATE|FOR (KEY )?SHARE|LOCK IN SHARE MODE)\b",
    re.S | re.I,
)


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[tuple[World, TestClient]]:
    yield from world_on_a_server_database(db_url, tmp_path)


def _race(w: World, *sides: Callable[[], Any]) -> tuple[list[Any], dict[int, str]]:
    """Run the sides at once, the crossing forced: what each returned (or raised), and the
    table each thread locked first."""
    crossing = Crossing(LOCKING, HOLD)
    event.listen(w.db.engine, "after_cursor_execute", crossing)
    start = threading.Barrier(len(sides))
    out: list[Any] = [None] * len(sides)

    def run(i: int) -> None:
        start.wait(timeout=30)
        try:
            out[i] = sides[i]()
        except Exception as exc:  # a deadlock's victim: shown by the assertions, not lost
            out[i] = exc

    try:
        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(sides))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads), "a side never answered"
    finally:
        event.remove(w.db.engine, "after_cursor_execute", crossing)
    return out, dict(crossing.first)


def _watched(w: World) -> tuple[int, str, int, str]:
    """A project whose staging rolls back when its watch fails, deployed twice (so there is
    a release to go back to) and its watch claimed by a worker: (project id, its name, the
    watch's id, the claim's holder token)."""
    name = fresh("watched")
    config = w.config(name)
    staging = config["environments"]["staging"]
    staging["watch"] = {"window": "10m", "on_failure": "rollback"}
    staging["health_check"] = [{"http": "http://{HOST}:1/health", "retries": 1, "timeout": "2s"}]
    project, _ = projects.apply_project(w.db, SYSTEM, parse_project(config))
    for release in ("first", "second"):
        deploy = deploys.request_deploy(w.db, SYSTEM, str(project.id), "staging", "v1")
        assert queue.claim_next(w.db, "lock-order") is not None
        deploy_records.set_hosts(w.db, deploy.id, {HOST: {"status": "success"}})
        deploy_records.set_live(w.db, project.id, "staging", deploy.id, {HOST: release})
        deploys.finish(w.db, deploy.id, "success", None)
    with w.db.transaction() as s:
        watch_id = s.scalar(
            select(DeployWatch.id).where(
                DeployWatch.deploy_id == deploy.id, DeployWatch.status == watch.WATCHING
            )
        )
        assert watch_id is not None
        s.execute(
            update(DeployWatch)
            .where(DeployWatch.id == watch_id)
            .values(next_check_at=datetime(2000, 1, 1, tzinfo=UTC))
        )
    claimed = [c for c in watch.claim_due(w.db, "lock-order", 60) if c.watch_id == watch_id]
    assert claimed, "the watch was not claimed"
    return project.id, name, watch_id, claimed[0].holder


def _active_deploys(w: World, project_id: int) -> list[Deploy]:
    with w.db.read() as s:
        rows = list(
            s.scalars(
                select(Deploy).where(
                    Deploy.project_id == project_id, Deploy.status.in_(DEPLOY_ACTIVE)
                )
            )
        )
        s.expunge_all()
        return rows


def _trials(body: Callable[[int], None]) -> int:
    began = time.monotonic()
    done = 0
    while done < TRIALS and (done < 2 or time.monotonic() - began < DEADLINE):
        body(done)
        done += 1
    return done


def test_deleting_a_project_while_its_watch_fails_and_rolls_back_never_deadlocks(world):
    w, client = world
    outcomes: set[tuple[str, int]] = set()
    headers = {"Authorization": f"Bearer {w.tokens['master']}"}

    def trial(n: int) -> None:
        project_id, name, watch_id, holder = _watched(w)
        (failed, gone), first = _race(
            w,
            lambda: watch.record_failure(w.db, watch_id, holder, HOST, f"HTTP 502 ({n})"),
            lambda: client.delete(f"{P}/projects/{SPACE}:{name}", headers=headers),
        )
        assert not isinstance(failed, BaseException), repr(failed)
        assert not isinstance(gone, BaseException), repr(gone)
        outcomes.add((str(failed), gone.status_code))
        with w.db.read() as s:
            project = s.get(Project, project_id)
            row = s.get(DeployWatch, watch_id)
            assert project is not None and row is not None
            deleted, status, rollback_id = project.deleted_at, row.status, row.rollback_id
            queued = s.scalar(
                select(func.count()).select_from(Deploy).where(Deploy.project_id == project_id)
            )
        active = _active_deploys(w, project_id)
        if failed == watch.FAILED:  # the failure first: its rollback holds off the deletion
            assert status == watch.FAILED and rollback_id is not None
            assert [(d.id, d.kind, d.status) for d in active] == [
                (rollback_id, "rollback", DeployStatus.QUEUED)
            ]
            assert gone.status_code == 409, gone.text
            assert deleted is None
        else:  # the deletion first: it ended the watch, and nothing was rolled back
            assert failed == watch.ENDED, failed
            assert gone.status_code == 204, gone.text
            assert deleted is not None
            assert status == watch.ENDED and rollback_id is None
            assert active == [] and queued == 2  # the two deploys of the set-up only
        # and each took the project's row first (the one order), whoever came first
        assert set(first.values()) == {"projects"}, first

    assert _trials(trial) >= 2
    assert all(code < 500 for _, code in outcomes), outcomes
