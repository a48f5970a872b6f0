"""Session 13 fault review: the database goes away just after a worker claimed a deploy.

Every database call a running deploy makes waits out an outage (its store, the recorder, the
outcome: ``db.outage``), so "a 20 s restart of PostgreSQL costs a deploy 20 s, not its
outcome" (docs/architecture.md). The run's first calls do not: ``run_deploy`` reads the
deploy (``build_context``) and takes the project lock (``locks.acquire``) without
``retried``. A restart that begins between the claim and those calls makes the run raise; the
worker recovers it as a crashed run (``Worker._recover_crashed``), and the deploy ends
``failed``/``worker_lost`` — nothing was wrong but a blip, no host was touched, and the
worker that "was lost" is alive. Both calls now wait the outage out. Here the blip is
placed there exactly: the private PostgreSQL is stopped when the worker hands the claimed
deploy to its run, and started again three seconds later.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
import time
from collections.abc import Iterator

import pytest

from ferryman.bootstrap import attach_key
from ferryman.config.settings import Settings
from ferryman.db.session import Database
from ferryman.jobs.deploy_job import run_deploy
from ferryman.jobs.worker import Worker
from ferryman.secretbox import SecretBox, load_key
from ferryman.services import deploy_views, deploys
from ferryman.testing.postgres import PrivatePostgres, unavailable
from tests.conftest import NET, set_approval
from tests.helpers import ADMIN, Repo, apply, live, project_config, unique

pytestmark = pytest.mark.fleet
HOST = f"{NET}.77"  # this xdist worker's own private PostgreSQL
PORT = 15452
BLIP = 3.0


@pytest.fixture
def pg(settings) -> Iterator[tuple[PrivatePostgres, Database]]:
    reason = unavailable()
    if reason:
        if os.environ.get("FERRYMAN_REQUIRE_DATABASES"):
            pytest.fail(reason)
        pytest.skip(reason)
    server = PrivatePostgres(host=HOST)
    server.start(PORT)
    try:
        db = Database(server.create_database(unique("blipstart").replace("-", "_")))
        db.upgrade()
        attach_key(db, SecretBox(load_key(settings.home)))
        set_approval(db, "production", False)
        try:
            yield server, db
        finally:
            db.dispose()
    finally:
        server.remove()


def _ended(db: Database, deploy_id: int) -> bool:
    try:
        return deploy_views.get(db, deploy_id)["status"] not in ("queued", "running")
    except Exception:  # the database is coming back
        return False


def test_a_database_blip_just_after_the_claim_costs_the_deploy_time_not_its_outcome(
    pg, settings, git_host, targets, tmp_path
):
    server, db = pg
    settings = dataclasses.replace(settings, lock_lease_seconds=6.0, worker_poll_seconds=0.1)
    hosts = targets[:2]
    repo = Repo(git_host, tmp_path, unique("blipstart"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, hosts))
    queued = deploys.request_deploy(db, ADMIN, repo.name, "production", "v1")
    blips: list[int] = []

    async def blipped(db: Database, settings: Settings, deploy_id: int, holder: str) -> str:
        if not blips:  # the first run only: PostgreSQL restarts as it starts
            blips.append(deploy_id)
            server.stop()
            threading.Timer(BLIP, server.start).start()
        return await run_deploy(db, settings, deploy_id, holder)

    loop = asyncio.new_event_loop()
    worker = Worker(db, settings, concurrency=1, runner=blipped)
    thread = threading.Thread(target=loop.run_until_complete, args=(worker.run(),))
    thread.start()
    try:
        deadline = time.monotonic() + 45
        while not _ended(db, queued.id):
            assert time.monotonic() < deadline, "the deploy did not end"
            time.sleep(0.2)
    finally:
        asyncio.run_coroutine_threadsafe(worker.stop(grace=30), loop)
        thread.join(60)
        loop.close()
        if not server.running():
            server.start()

    result = deploy_views.get(db, queued.id)
    assert blips == [queued.id]
    assert result["status"] == "success", result["error"]
    assert {live(h, repo.name) for h in hosts} == {result["release"]}
