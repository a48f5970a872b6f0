"""Review (session 10) of the deploy claims of 9fd0250: a holder token per claim fences the run.

Faults played: an operator freezing (SIGSTOP) and killing workers, so a deploy changes hands
more than once, and a stale run that keeps going after its claim was lost."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from ferryman.config.settings import Settings
from ferryman.db.clock import db_now
from ferryman.db.models import Deploy
from ferryman.db.session import Database
from ferryman.domain.rollout import Rollout
from ferryman.errors import Conflict
from ferryman.jobs import worker as worker_module
from ferryman.jobs.worker import Worker
from ferryman.services import locks, queue, rollouts
from tests.jobs.claiming import Claimer
from tests.jobs.test_lost_lease import _expire, _row
from tests.jobs.test_queue import _queue_jobs

LEASE = 3.0


def _holder(db: Database, deploy_id: int) -> str:
    with db.read() as s:
        return str(s.scalar(select(Deploy.claimed_by).where(Deploy.id == deploy_id)))


def test_a_take_over_of_a_deploy_the_worker_is_still_recovering_is_not_orphaned(
    db: Database, settings: Settings
) -> None:
    [job] = _queue_jobs(db, 1)
    dead = Claimer(db, "dead")
    assert dead.claim_next(lease=LEASE) == job
    _expire(db, job)  # its worker was killed
    me = Worker(db, dataclasses.replace(settings, lock_lease_seconds=LEASE))

    async def play() -> bool:
        [first] = queue.take_over_lost(db, me.name, LEASE)  # the reaper's take-over
        # its recovery is going; then the whole worker is frozen (SIGSTOP) past its lease
        stale = asyncio.create_task(asyncio.sleep(3600))
        me._recovering[job] = stale
        _expire(db, job)
        other = Claimer(db, "other")
        assert other.take_over_lost(LEASE) == [job]  # another worker takes it over ...
        _expire(db, job)  # ... and is killed (SIGKILL) before it recovers it
        # the frozen worker goes on (SIGCONT): its reaper comes round before its old
        # recovery's heartbeat notices it lost the deploy (today: a claim of its own it skips)
        await me._reap()
        # the old recovery is fenced (its token is no longer the deploy's) and ends
        assert not queue.renew_lease(db, job, first.holder, LEASE)
        stale.cancel()
        await asyncio.gather(stale, return_exceptions=True)
        me._recovering.pop(job, None)
        # a lease taken meanwhile runs out (nothing renews it); the reaper comes round again
        _expire(db, job)
        await me._reap()
        recovering = job in me._recovering
        for task in me._recovering.values():
            task.cancel()
        await asyncio.gather(*me._recovering.values(), return_exceptions=True)
        return recovering

    recovering = asyncio.run(play())
    status, worker = _row(db, job)
    # today: running, held by this worker under a token no run carries, which its reaper
    # never takes (never its own): with no other worker, it stays running for good
    assert status != "running" or recovering, (
        f"deploy #{job} is {status}, held by {worker} as {_holder(db, job)!r}, "
        f"and nobody recovers it "
        f"(this worker's take-over: {queue.take_over_lost(db, me.name, LEASE)})"
    )


def test_a_stale_runs_pause_writes_nothing_and_keeps_the_new_owners_lock(
    db: Database,
) -> None:
    """``rollouts.pause`` of a run whose claim was lost changes nothing: the deploy stays the
    new claim's, and the lock the new claim's recovery holds is not released."""
    [job] = _queue_jobs(db, 1)
    me, other = Claimer(db, "me"), Claimer(db, "other")
    assert me.claim_next(lease=LEASE) == job
    old = me.holder(job)
    _expire(db, job)
    assert other.take_over_lost(LEASE) == [job]
    key = locks.deploy_key(1, "staging")
    locks.acquire(
        db, key, owner=f"other:recover-{job}", deploy_id=job, holder="recovery", lease=60.0
    )
    rollouts.pause(db, job, Rollout.from_dict({"batches": [1]}), old, (key, f"me:deploy-{job}"))
    assert _row(db, job) == ("running", "other")
    assert _holder(db, job) == other.holder(job)
    assert locks.heartbeat(db, key, owner=f"other:recover-{job}", lease=LEASE)


def test_a_run_that_crashes_at_its_start_leaves_no_deploy_running_for_good(
    db: Database, settings: Settings
) -> None:
    [job] = _queue_jobs(db, 1)

    async def crashing(_db: Database, _settings: Settings, _deploy_id: int, _holder: str) -> str:
        raise ConnectionError("the database went away just after the claim")

    me = Worker(
        db, dataclasses.replace(settings, lock_lease_seconds=LEASE), concurrency=1, runner=crashing
    )

    async def play() -> bool:
        got = queue.claim(db, me.name, None, LEASE)
        assert got is not None and got.id == job
        await me._slots.acquire()  # as _run does before it starts a run
        assert await me._run_one(got.id, got.holder) == "failed"
        _expire(db, job)  # nothing renewed the claim; the reaper comes round
        await me._reap()
        recovering = job in me._recovering
        for task in me._recovering.values():
            task.cancel()
        await asyncio.gather(*me._recovering.values(), return_exceptions=True)
        return recovering

    recovering = asyncio.run(play())
    status, worker = _row(db, job)
    # the crashed run's claim is recovered by its own worker (its reaper never takes it)
    assert status != "running" or recovering, (
        f"deploy #{job} is {status}, held by {worker} as {_holder(db, job)!r}: the crashed "
        f"run's deploy is neither ended nor recovered "
        f"(this worker's take-over: {queue.take_over_lost(db, me.name, LEASE)})"
    )


def _old_code_take_over(db: Database, worker: str, deploy_id: int) -> None:
    """``take_over_lost`` as the code before 9fd0250 wrote it (a worker not yet restarted
    after ``ferryman migrate``, docs/operations.md "Upgrade"): worker and lease, no token."""
    with db.transaction() as s:
        now = db_now(s)
        s.execute(
            update(Deploy)
            .where(Deploy.id == deploy_id, Deploy.status == "running", Deploy.worker != worker)
            .values(worker=worker, lease_expires_at=now + timedelta(seconds=LEASE))
        )


def test_a_take_over_by_a_worker_on_the_old_code_fences_the_new_codes_run(
    db: Database,
) -> None:
    [job] = _queue_jobs(db, 1)
    new = Claimer(db, "new")
    assert new.claim_next(lease=LEASE) == job
    token = new.holder(job)
    _expire(db, job)  # the new-code worker froze past its lease
    _old_code_take_over(db, "old", job)
    assert _row(db, job) == ("running", "old")  # the old worker now recovers its hosts
    # the frozen run goes on: it must be fenced from its heartbeat and its outcome
    renewed = queue.renew_lease(db, job, token, LEASE)
    finished = queue.finish_if_held(db, job, token, "success", None)
    assert (renewed, finished) == (False, False), "a run taken over still renews and succeeds"


# --- races on every database: take-over against take-over, cancel against claim -----------

TRIALS = 15


def _race(first: Callable[[], object], second: Callable[[], object]) -> list[object]:
    """Both from a barrier, each in its own thread; what each returned (or raised)."""
    barrier = threading.Barrier(2)
    out: list[object] = [None, None]

    def go(i: int, fn: Callable[[], object]) -> None:
        try:
            barrier.wait(10)
            out[i] = fn()
        except BaseException as exc:  # looked at by the test thread
            out[i] = exc

    threads = [threading.Thread(target=go, args=(i, fn)) for i, fn in enumerate((first, second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def test_two_reapers_at_once_take_a_lost_deploy_over_once_and_fence_the_other(db_url: str):
    db = Database(db_url)
    db.upgrade()
    reapers = [Database(db_url) for _ in range(2)]
    try:
        jobs = _queue_jobs(db, TRIALS)
        for job in jobs:
            dead = Claimer(db, "dead")
            assert dead.claim_next(lease=LEASE) == job
            old = dead.holder(job)
            _expire(db, job)
            a, b = _race(
                lambda: queue.take_over_lost(reapers[0], "a", LEASE),
                lambda: queue.take_over_lost(reapers[1], "b", LEASE),
            )
            assert isinstance(a, list) and isinstance(b, list), (a, b)
            claims = [c for c in a + b if c.id == job]
            assert len(claims) == 1, claims  # exactly one take-over
            [won] = claims
            assert _holder(db, job) == won.holder
            assert _row(db, job) == ("running", claims_worker(won.holder))
            assert not queue.renew_lease(db, job, old, LEASE)  # the dead run is fenced
            assert queue.finish_if_held(db, job, won.holder, "failed", None)
    finally:
        for reaper in reapers:
            reaper.dispose()
        db.dispose()


def claims_worker(holder: str) -> str:
    return holder.rpartition("~")[0]


def test_a_cancel_racing_a_claim_either_cancels_it_or_refuses_never_both(db_url: str):
    db = Database(db_url)
    db.upgrade()
    claimer, canceller = Database(db_url), Database(db_url)

    def cancel(job: int) -> str:
        with canceller.transaction() as s:
            row = s.get(Deploy, job)
            assert row is not None
            queue.cancel_queued(s, row)
        return "cancelled"

    try:
        for _trial in range(TRIALS):
            [job] = _queue_jobs(db, 1)  # the only one queued: the claim races for it
            got, cancelled = _race(
                lambda: queue.claim(claimer, "w", None, LEASE),
                functools.partial(cancel, job),
            )
            status, _worker = _row(db, job)
            if isinstance(got, queue.Claim):
                assert got.id == job
                assert isinstance(cancelled, Conflict), cancelled
                assert status == "running" and _holder(db, job) == got.holder
                assert queue.finish_if_held(db, job, got.holder, "failed", None)
            else:
                assert got is None and cancelled == "cancelled", (got, cancelled)
                assert status == "cancelled" and _holder(db, job) == ""
    finally:
        claimer.dispose()
        canceller.dispose()
        db.dispose()


def test_a_recovery_that_crashes_leaves_no_deploy_running_for_good(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    [job] = _queue_jobs(db, 1)
    dead = Claimer(db, "dead")
    assert dead.claim_next(lease=LEASE) == job
    _expire(db, job)  # its worker was killed
    me = Worker(db, dataclasses.replace(settings, lock_lease_seconds=LEASE))
    calls: list[str] = []

    async def crashing(_db: Database, _settings: Settings, _deploy_id: int, holder: str) -> bool:
        calls.append(holder)
        raise ConnectionError("the database went away as the recovery read the deploy")

    monkeypatch.setattr(worker_module, "recover", crashing)

    async def play() -> None:
        await me._reap()  # takes it over and starts its recovery, which crashes
        await asyncio.gather(*me._recovering.values(), return_exceptions=True)
        _expire(db, job)  # nothing renews the claim now; the reaper comes round again
        await me._reap()
        await asyncio.gather(*me._recovering.values(), return_exceptions=True)

    asyncio.run(play())
    assert calls, "the reaper never started the recovery"
    status, worker = _row(db, job)
    assert status != "running" or len(calls) > 1, (
        f"deploy #{job} is {status}, held by {worker} as {_holder(db, job)!r}, after one "
        f"recovery that crashed: nobody tries again and its reaper never takes it "
        f"(this worker's take-over: {queue.take_over_lost(db, me.name, LEASE)})"
    )
