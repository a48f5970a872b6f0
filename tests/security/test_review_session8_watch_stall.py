"""Review (session 8): one slow post-deploy watch stalls every other watch of the worker.

A worker's periodic loop (``jobs/housekeeping.periodic``) awaits ``watch_job.tick``, which
claims the due watches and then waits for every round it started to end before the loop
claims again. A round is bounded only by its checks: up to 100 tries of up to 10 minutes
each, per check, renewed all the while (``jobs/held.py``). So the master of one project
(one space) who writes a slow ``health_check`` holds the worker's watch loop — and with it
the watches of every other project and space that worker serves: their checks do not run,
a release that breaks is not rolled back, for as long as that round lasts. The summaries
the same loop sends wait too.

On the real fleet: project A's check blocks on host 1 until the test lets it go (a marker
file); project B's check appends a line to a file on host 2 each time it runs. While A's
round is blocked, B's watch falls due; it should be checked."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import update

from ferryman.db.clock import db_now
from ferryman.db.models import DeployWatch
from ferryman.jobs import housekeeping
from tests.helpers import Repo, apply, deploy, project_config, unique

pytestmark = pytest.mark.fleet
WAIT = 30.0  # seconds a step may take before the test gives up on it


def _due(db, deploy_id: int, now: bool) -> None:
    with db.transaction() as s:
        moment = db_now(s)
        s.execute(
            update(DeployWatch)
            .where(DeployWatch.deploy_id == deploy_id)
            .values(next_check_at=moment if now else moment.replace(year=moment.year + 1))
        )


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _until(what, why: str) -> bool:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(0.2)
    return False


def test_a_slow_watch_round_does_not_hold_up_another_projects_watch(
    db, settings, git_host, targets, tmp_path: Path
):
    slow_host, other_host = targets[0], targets[1]
    tag = unique("stall")
    go, started = f"/srv/{tag}-go", f"/srv/{tag}-started"
    checked = f"/srv/{tag}-checked"
    watched = {"window": "1h", "every": "1s"}

    slow = Repo(git_host, tmp_path, unique("slow"))
    slow.commit({"index.html": "a\n"}, tag="v1")
    blocking = f"touch {started}; while [ ! -e {go} ]; do sleep 0.2; done"
    apply(
        db,
        project_config(
            slow.name,
            slow.url,
            [slow_host],
            health_check=[{"command": blocking, "retries": 1, "timeout": "10m"}],
            watch=watched,
        ),
    )
    other = Repo(git_host, tmp_path, unique("other"))
    other.commit({"index.html": "b\n"}, tag="v1")
    apply(
        db,
        project_config(
            other.name,
            other.url,
            [other_host],
            health_check=[{"command": f"date >> {checked}", "retries": 1, "timeout": "10s"}],
            watch=watched,
        ),
    )
    slow_host.path(go).touch()  # the slow check passes at once while deploying
    a = deploy(db, settings, slow.name, "v1")
    b = deploy(db, settings, other.name, "v1")
    assert a["status"] == "success" and b["status"] == "success", (a["error"], b["error"])
    slow_host.path(go).unlink()
    slow_host.path(started).unlink()
    before = _lines(other_host.path(checked))
    _due(db, b["id"], now=False)
    _due(db, a["id"], now=True)

    stopping = asyncio.Event()
    loop = asyncio.new_event_loop()
    worker = threading.Thread(
        target=lambda: loop.run_until_complete(
            housekeeping.periodic(db, settings, stopping, "review8")
        )
    )
    worker.start()
    try:
        assert _until(slow_host.path(started).exists, "A's round started")
        _due(db, b["id"], now=True)  # B falls due while A's round is blocked
        b_checked = _until(lambda: _lines(other_host.path(checked)) > before, "B checked")
    finally:
        slow_host.path(go).touch()  # let A's round end, then stop the loop
        loop.call_soon_threadsafe(stopping.set)
        worker.join(timeout=WAIT)
        loop.close()
    assert b_checked, "B's due watch was not checked while A's round ran"
