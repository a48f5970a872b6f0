"""A database outage stops every heartbeat, so the leases of deploys whose workers are alive
run out while it lasts. The first worker back must not take those deploys over (the soak of
issue 22 saw six healthy deploys failed as ``worker_lost`` after a 5 s PostgreSQL restart):
a worker that saw the database out waits half a lease and the connect timeout
(``worker.outage_pause``) before it takes anything over, and the deploy's own worker renews its
lease meanwhile. A dead worker's deploy is still taken over, that pause later. On a private
PostgreSQL the test stops and starts (the shared server is never touched)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Iterator

import pytest

from ferryman.db.session import Database
from ferryman.jobs.worker import Worker, outage_pause
from ferryman.services import queue
from ferryman.testing.postgres import PrivatePostgres, unavailable
from tests.conftest import NET
from tests.helpers import unique
from tests.jobs.claiming import Claimer
from tests.jobs.test_lost_lease import _expire, _row
from tests.jobs.test_queue import _queue_jobs

HOST = f"{NET}.75"  # this xdist worker's own private PostgreSQL
PORT = 15441
LEASE = 4.0


@pytest.fixture
def pg() -> Iterator[tuple[PrivatePostgres, Database]]:
    reason = unavailable()
    if reason:
        if os.environ.get("FERRYMAN_REQUIRE_DATABASES"):
            pytest.fail(reason)
        pytest.skip(reason)
    server = PrivatePostgres(host=HOST)
    server.start(PORT)
    try:
        db = Database(server.create_database(unique("reap").replace("-", "_")))
        db.upgrade()
        try:
            yield server, db
        finally:
            db.dispose()
    finally:
        server.remove()


async def _reap_once(worker: Worker) -> list[int]:
    """One reap; the deploys it took over (their recoveries are cancelled: the recovery itself
    is tested elsewhere, only the take-over here)."""
    await worker._reap()
    taken = list(worker._recovering)
    for task in worker._recovering.values():
        task.cancel()
    await asyncio.gather(*worker._recovering.values(), return_exceptions=True)
    return taken


def test_after_an_outage_the_reaper_leaves_a_live_workers_lapsed_lease_to_its_worker(pg, settings):
    server, db = pg
    [job] = _queue_jobs(db, 1)
    owner = Claimer(db, "owner")
    assert owner.claim_next(lease=LEASE) == job
    rescuer = Worker(db, dataclasses.replace(settings, lock_lease_seconds=LEASE))

    server.stop()  # the outage: every heartbeat fails, the reaper's too
    asyncio.run(rescuer._reap())
    server.start()
    _expire(db, job)  # the owner's lease ran out while the database was away

    asyncio.run(rescuer._reap())  # the database is back: the first reap takes nothing
    assert _row(db, job) == ("running", "owner")
    # the owner's heartbeat gets through
    assert queue.renew_lease(db, job, owner.holder(job), LEASE)

    # a worker that really died is still taken over, a pause after the outage
    [dead] = _queue_jobs(db, 1)
    assert queue.claim_next(db, "dead", lease=LEASE) == dead
    _expire(db, dead)
    time.sleep(outage_pause(LEASE) + 0.2)
    # the pause is longer than this short lease: the owner, alive, kept renewing meanwhile
    assert queue.renew_lease(db, job, owner.holder(job), LEASE)
    assert asyncio.run(_reap_once(rescuer)) == [dead]
    assert _row(db, dead)[1] == rescuer.name
    assert _row(db, job) == ("running", "owner")  # its lease was renewed: still its own


def test_a_worker_that_saw_no_outage_takes_a_lapsed_lease_over_at_once(pg, settings):
    _server, db = pg
    [job] = _queue_jobs(db, 1)
    assert queue.claim_next(db, "dead", lease=LEASE) == job
    _expire(db, job)
    rescuer = Worker(db, dataclasses.replace(settings, lock_lease_seconds=LEASE))
    assert asyncio.run(_reap_once(rescuer)) == [job]
    assert _row(db, job)[1] == rescuer.name
