"""The worker: claims queued deploys from the database and runs them, a few at a time.

Embedded in ``ferryman serve`` by default, or standalone (``ferryman worker``) on any machine
that reaches the database; any number may share one database. A claim is atomic (``FOR UPDATE
SKIP LOCKED`` on PostgreSQL and MariaDB, a conditional update on SQLite: ``services.queue``,
over ``db/claims.py``) and gives the run a lease and a holder token of its own; the run renews
the lease by that token and writes only while it holds. A deploy whose run stops renewing is
taken over by another worker — a new claim, a new token — which puts its hosts in order and
fails it (``pipeline.recover``).

Fairness: claims go by priority (emergency rollbacks, rollbacks, then the rest, oldest first)
and a space's ordinary deploys wait while it runs its ``max_running`` (``services.queue``).
With a concurrency of 2 or more, the last free slot only takes rollbacks, so ordinary deploys
filling the worker never make a rollback wait for a slot.

Reaping runs beside the slots, never waiting for one: every lease/3 the reaper takes over
deploys whose lease ran out (never this worker's own: its run may still renew it) with new
claims and recovers each in a task of its own (at most ``RECOVERIES`` at once), so a worker
busy with long deploys still takes a dead worker's deploy over within the lease.

``stop()`` drains: no new claims; running deploys get ``grace`` seconds to finish, then they
are asked to stop at their next safe point, which leaves every host on a complete release.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

from ferryman.config.settings import Settings
from ferryman.db.outage import is_outage, retried
from ferryman.db.session import CONNECT_TIMEOUT, Database
from ferryman.domain.statuses import DeployStatus
from ferryman.jobs import housekeeping, queue_wakeups
from ferryman.jobs.deploy_job import LOST, run_deploy
from ferryman.jobs.held import next_beat
from ferryman.jobs.recover_job import recover
from ferryman.notify import dispatcher
from ferryman.observability.logs import deploy_event
from ferryman.pipeline.recover import lost_error
from ferryman.services import notifications, queue, workers

log = logging.getLogger(__name__)
Runner = Callable[[Database, Settings, int, str], Awaitable[str]]  # deploy id, holder token
RECOVERIES = 4  # recoveries at once per worker
RECOVERY_ATTEMPTS = 3  # a recovery that fails this often (no outage) ends its deploy failed


class Worker:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        concurrency: int | None = None,
        queues: Sequence[str] | None = None,
        runner: Runner = run_deploy,
    ) -> None:
        self.db = db
        self.settings = settings
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.concurrency = concurrency or settings.worker_concurrency
        self.queues = list(queues or [])
        self.runner = runner
        self._slots = asyncio.Semaphore(self.concurrency)
        self._running: dict[int, asyncio.Task[str]] = {}
        self._ordinary = 0  # running deploys that are not rollbacks
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._recoveries = asyncio.Semaphore(RECOVERIES)
        self._recovering: dict[int, asyncio.Task[None]] = {}
        self.last_beat: float | None = None  # time.monotonic() of the last heartbeat written
        # after a database outage the reaper waits half a lease (``_reap``): time.monotonic()
        # from which it may take over again, and whether the database is out as far as known
        self._reap_from = 0.0
        self._database_out = False

    def wake(self) -> None:
        """Called after a deploy is queued in this process, or (PostgreSQL) in any process
        (``queue_wakeups``), so it starts without polling lag."""
        self._wake.set()

    async def run(self) -> None:
        """Claim and run deploys until ``stop()``; deliver notifications beside them."""
        try:
            await asyncio.to_thread(housekeeping.sweep_workspaces, self.db, self.settings)
        except Exception:  # tidying never keeps a worker from starting
            log.warning("sweeping old workspaces failed", exc_info=True)
        notifier = asyncio.create_task(
            dispatcher.run(self.db, self.settings, self._stopping, worker=self.name)
        )
        reaper = asyncio.create_task(self._reaper())
        keeper = asyncio.create_task(  # post-deploy watches
            housekeeping.periodic(self.db, self.settings, self._stopping, self.name)
        )
        pruner = asyncio.create_task(  # FERRYMAN_LOG_RETENTION, unusable artifacts
            housekeeping.retention(self.db, self.settings, self._stopping)
        )
        heart = asyncio.create_task(self._heartbeat())
        listener = asyncio.create_task(
            queue_wakeups.listen(self.db.engine.url, self.wake, self.queues)
        )
        try:
            await self._run()
        finally:
            self._stopping.set()
            for task in (reaper, heart, listener, keeper, pruner):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for task in list(self._recovering.values()):
                with contextlib.suppress(asyncio.CancelledError):
                    await task  # a recovery runs to its end: it leaves hosts in order
            with contextlib.suppress(asyncio.CancelledError):
                await notifier
            try:
                await asyncio.to_thread(workers.forget, self.db, self.name)
            except Exception:  # its row goes stale and is swept
                log.warning("removing the heartbeat of %s failed", self.name, exc_info=True)

    async def _heartbeat(self) -> None:
        """Say in the database that this worker is alive (``/readyz``, ``/metrics``)."""
        while True:
            try:
                await asyncio.to_thread(
                    workers.beat,
                    self.db,
                    self.name,
                    concurrency=self.concurrency,
                    running=len(self._running),
                    queues=self.queues,
                )
                self.last_beat = time.monotonic()
                self._database_answered()
            except Exception as exc:
                self._database_failed(exc)
                log.warning("the heartbeat of %s failed", self.name, exc_info=True)
            await asyncio.sleep(workers.HEARTBEAT)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            await self._slots.acquire()
            if self._stopping.is_set():
                self._slots.release()
                break
            claimed = None
            # cleared before looking, never after: a wake-up that comes while the claim
            # runs (a deploy queued just after its query) makes the wait below return at once
            self._wake.clear()
            try:
                claimed = await asyncio.to_thread(
                    queue.claim,
                    self.db,
                    self.name,
                    self.queues,
                    self.settings.lock_lease_seconds,
                    rollbacks_only=self._last_slot(),
                )
            except Exception:
                log.exception("claiming a deploy failed")
            if claimed is None:
                self._slots.release()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wait_for_work(), self.settings.worker_poll_seconds)
                continue
            if claimed.ordinary:
                self._ordinary += 1
            deploy_event(
                "claimed",
                claimed.id,
                f"deploy {claimed.id} claimed by worker {self.name}",
                worker=self.name,
            )
            task = asyncio.create_task(self._run_one(claimed.id, claimed.holder, claimed.ordinary))
            self._running[claimed.id] = task

    def _last_slot(self) -> bool:
        """Whether the slot about to claim is the one kept for rollbacks: ordinary deploys
        use at most ``concurrency - 1`` slots (all of them with a concurrency of 1)."""
        return self.concurrency >= 2 and self._ordinary >= self.concurrency - 1

    async def _wait_for_work(self) -> None:
        stop = asyncio.create_task(self._stopping.wait())
        wake = asyncio.create_task(self._wake.wait())
        try:
            await asyncio.wait({stop, wake}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            wake.cancel()

    async def _run_one(self, deploy_id: int, holder: str, ordinary: bool = True) -> str:
        status: str = DeployStatus.FAILED
        try:
            status = await self.runner(self.db, self.settings, deploy_id, holder)
            return status
        except Exception:
            # the run broke off at a point nobody knows (before its first host, or between
            # two): its claim is still this worker's, which its reaper never takes over, so
            # it is recovered here — hosts put in order and the deploy ended — like a lost one
            log.exception("deploy %s could not be run; recovering it", deploy_id)
            self._recover_crashed(deploy_id, holder)
            return status
        finally:
            _finished(deploy_id, status, self.name)
            self._running.pop(deploy_id, None)
            if ordinary:
                self._ordinary -= 1
            self._slots.release()
            self._wake.set()  # its space may take another deploy now

    async def _reaper(self) -> None:
        """Every lease/3, whatever the slots are doing: reap."""
        while not self._stopping.is_set():
            await self._reap()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._stopping.wait(), max(0.1, self.settings.lock_lease_seconds / 3)
                )

    def _database_failed(self, exc: BaseException) -> None:
        if is_outage(exc):
            self._database_out = True

    def _database_answered(self) -> None:
        """The database answers: if it was out, no take-over for half a lease and the
        connect timeout (``outage_pause``). An outage stops every worker's heartbeats, so
        leases of deploys whose workers are alive run out meanwhile; the first worker back
        must not take them over before their workers renew them (it would fail deploys as
        ``worker_lost`` whose workers never stopped). A run's heartbeat in flight when the
        database returns may hang for the connect timeout, and a failed beat is tried again
        within ``held.RETRY_BEAT``, well inside the pause. A lease can only run out in an
        outage longer than two thirds of it, which this worker's heartbeat or reaper (every
        third of a lease) sees fail."""
        if self._database_out:
            self._database_out = False
            pause = outage_pause(self.settings.lock_lease_seconds)
            self._reap_from = time.monotonic() + pause
            log.info("the database answers again: no take-over for %.0f s", pause)

    async def _reap(self) -> None:
        """Take over deploys whose worker is gone (each recovered in a task of its own); tell
        people about deploys holding their environment unusually long."""
        try:
            await asyncio.to_thread(
                notifications.warn_long_locks, self.db, self.settings.lock_warn_minutes
            )
            self._database_answered()
        except Exception as exc:
            self._database_failed(exc)
            log.exception("looking for long-held locks failed")
        if self._database_out or time.monotonic() < self._reap_from:
            return  # leases that ran out in an outage are their own workers' to renew first
        # a deploy this worker still runs or recovers is left to that task, even when another
        # worker took it over meanwhile and lost it in turn: fenced, the task ends, and a
        # later round takes the deploy over (a take-over now would have no task to run it)
        leave = {*self._running, *self._recovering}
        try:
            lost = await asyncio.to_thread(
                queue.take_over_lost,
                self.db,
                self.name,
                self.settings.lock_lease_seconds,
                leave=leave,
            )
        except Exception as exc:
            self._database_failed(exc)
            log.exception("looking for lost deploys failed")
            return
        for claim in lost:
            deploy_id = claim.id
            if deploy_id in self._recovering:
                continue
            deploy_event(
                "taken_over",
                deploy_id,
                f"deploy {deploy_id} lost its worker; {self.name} takes it over",
                worker=self.name,
            )
            try:
                await asyncio.to_thread(workers.record_take_over, self.db, deploy_id, self.name)
            except Exception:
                log.warning("recording the take-over of %s failed", deploy_id, exc_info=True)
            task = asyncio.create_task(self._recover(deploy_id, claim.holder))
            self._recovering[deploy_id] = task

    def _recover_crashed(self, deploy_id: int, holder: str) -> None:
        """Recover a deploy whose run raised, under the run's own claim."""
        if deploy_id in self._recovering or self._stopping.is_set():
            return  # shutting down: its lease runs out and another worker takes it over
        self._recovering[deploy_id] = asyncio.create_task(self._recover(deploy_id, holder))

    async def _give_up(self, deploy_id: int, holder: str, exc: BaseException) -> None:
        """End a deploy whose recovery keeps failing (not for an outage: its project or a
        secret cannot be read) as failed, so its environment is free again; its hosts were
        not put in order, and the error says to check them."""
        problem = (
            f"; its recovery could not run ({type(exc).__name__}: {exc}): check its hosts "
            "with `ferryman releases verify`"
        )
        try:
            ended = await retried(
                queue.finish_if_held,
                self.db,
                deploy_id,
                holder,
                DeployStatus.FAILED,
                lost_error(self.name, problem[:1000]),
            )
        except Exception:
            log.exception("ending deploy %s after its recovery failed", deploy_id)
            return
        if ended:
            log.error(
                "deploy %s ended failed: its recovery failed %d times", deploy_id, RECOVERY_ATTEMPTS
            )

    async def _recover(self, deploy_id: int, holder: str) -> None:
        """Recover one taken-over deploy as the take-over's claim ``holder``, keeping its
        lease meanwhile (the reaper never takes back a deploy of this worker's); a project
        lock still held is waited for."""
        lease = self.settings.lock_lease_seconds
        keeper = asyncio.create_task(self._keep_lease(deploy_id, holder))
        failures = 0
        try:
            async with self._recoveries:
                while True:
                    try:
                        if await recover(self.db, self.settings, deploy_id, holder):
                            deploy_event(
                                "recovered",
                                deploy_id,
                                f"deploy {deploy_id} recovered by worker {self.name}",
                                worker=self.name,
                            )
                            return
                    except Exception as exc:
                        # a database outage is waited out; anything else is tried again a
                        # few times (a lock or a host may be busy), then the deploy is ended
                        log.exception("recovering deploy %s failed", deploy_id)
                        failures += 0 if is_outage(exc) else 1
                        if failures >= RECOVERY_ATTEMPTS:
                            await self._give_up(deploy_id, holder, exc)
                            return
                    if keeper.done() or self._stopping.is_set():
                        return  # no longer ours, or shutting down: another worker will do it
                    await asyncio.sleep(max(0.5, lease / 3))
        finally:
            keeper.cancel()
            self._recovering.pop(deploy_id, None)

    async def _keep_lease(self, deploy_id: int, holder: str) -> None:
        lease = self.settings.lock_lease_seconds
        answered = True
        while True:
            # a missed renewal is tried again soon, as a run's heartbeat (``held.next_beat``)
            await asyncio.sleep(next_beat(max(0.5, lease / 3), answered))
            try:
                if not await asyncio.to_thread(
                    queue.renew_lease, self.db, deploy_id, holder, lease
                ):
                    return  # finished by the recovery, or taken by another worker
            except Exception:
                log.warning(
                    "extending the recovery lease of %s failed", deploy_id, exc_info=answered
                )
                answered = False
            else:
                answered = True

    async def stop(self, grace: float | None = None) -> None:
        """Drain: claim nothing more, let running deploys finish within ``grace`` seconds,
        then ask the rest to stop at their next safe point and wait for them."""
        self._stopping.set()
        limit = self.settings.drain_grace_seconds if grace is None else grace
        running = list(self._running.values())
        if not running:
            return
        _done, pending = await asyncio.wait(running, timeout=limit)
        if pending:
            for deploy_id in list(self._running):
                await asyncio.to_thread(
                    queue.interrupt, self.db, deploy_id, f"worker {self.name} is shutting down"
                )
            await asyncio.wait(pending)

    async def drain(self) -> None:
        """Wait for running deploys to finish (tests)."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)


def outage_pause(lease: float) -> float:
    """Seconds a worker takes nothing over after it saw the database answer again: half a
    lease, plus the connect timeout a heartbeat in flight at the return may hang for."""
    return lease / 2 + CONNECT_TIMEOUT


def _finished(deploy_id: int, status: str, worker: str) -> None:
    """The lifecycle event for a run's end: ``finished`` (success, failed, paused),
    ``cancelled``, or ``lost`` when another worker took the deploy over."""
    event = {DeployStatus.CANCELLED: "cancelled", LOST: "lost"}.get(status, "finished")
    deploy_event(
        event,
        deploy_id,
        f"deploy {deploy_id} {'ended ' + status if event == 'finished' else event} "
        f"on worker {worker}",
        worker=worker,
        status=status,
    )
