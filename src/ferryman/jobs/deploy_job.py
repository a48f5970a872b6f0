"""A deploy as a job: a claimed deploy's record turned into the engine's context, held (its
lease and the project lock, renewed by a heartbeat; the cancel flag watched beside it), run by
``pipeline.runner.execute``, and ended with one outcome written while its claim still holds
it. The claim's holder token (``services/queue.py``) is what the run carries: its heartbeat,
every record it writes (``ctx.owner``, through the store) and its outcome are fenced by it.
Everything here talks to the database; the engine it drives does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
import traceback
from typing import Any, Final

from ferryman.config.project import parse_project
from ferryman.config.settings import Settings
from ferryman.db.claims import worker_of
from ferryman.db.models import utcnow
from ferryman.db.outage import retried
from ferryman.db.session import Database
from ferryman.domain.rollout import Rollout
from ferryman.domain.statuses import DeployStatus, HostStatus
from ferryman.errors import Cancelled, FerrymanError, OwnershipLost
from ferryman.jobs.held import next_beat
from ferryman.pipeline import runner
from ferryman.pipeline.context import Context, new_context
from ferryman.secretbox import is_sealed
from ferryman.services import (
    config_files,
    deploy_records,
    deploys,
    locks,
    notifications,
    queue,
    rollouts,
)
from ferryman.services.deploy_records import DatabaseWriter, LogRecord
from ferryman.services.deploy_store import database_store
from ferryman.services.space_access import space_access
from ferryman.vcs.base import Resolved

log = logging.getLogger(__name__)
CANCEL_POLL = 1.0  # seconds between looks at the cancel flag
# a run's outcome when another claim took its deploy over: no deploy status (the run wrote
# no outcome), only what ``run_deploy`` returns and the worker's log line says
LOST: Final = "lost"


def opened_variables(db: Database, variables: dict[str, str]) -> dict[str, str]:
    """A deploy's variables with their secret values opened — only here, in the worker's
    memory (the deploy's run and its post-deploy watch)."""
    return {k: db.box.open(v) if is_sealed(v) else v for k, v in variables.items()}


def build_context(db: Database, settings: Settings, deploy_id: int) -> Context:
    deploy, project = deploys.load(db, deploy_id)
    ctx: Context
    variables = opened_variables(db, deploy.variables)
    files, host_ids = (
        config_files.open_bundle(db.box, deploy.config_bundle) if deploy.config_bundle else ([], {})
    )
    ctx = new_context(
        settings,
        parse_project(deploy.config),
        deploy.env,
        writer=DatabaseWriter(db),
        store_for=database_store(db),
        deploy_id=deploy.id,
        project_id=project.id,
        kind=deploy.kind,
        ref=deploy.ref,
        target_release=deploy.target_release,
        requested_by=deploy.requested_by_name,
        hosts=deploy.hosts,
        pinned_commit=deploy.commit,
        env_variables=variables,
        secret_names=deploy.secret_names,
        retry_of=deploy.retry_of,
        config_files=files,
        host_ids=host_ids,
        space=space_access(db, settings, project.space_id),
    )
    ctx.options = dict(deploy.options or {})
    if deploy.rollout is not None:
        ctx.rollout = Rollout.from_dict(deploy.rollout)
    if ctx.options.get("emergency"):
        ctx.limit = max(len(ctx.targets), 1)  # every host at once
    if deploy.release_name and ctx.rollout is not None and ctx.rollout.next_batch > 0:
        ctx.release = deploy.release_name  # resuming a gray release
        ctx.resolved = Resolved(ref=deploy.ref, commit=deploy.commit)
        # what ran before the pause stays in the record: the resumed run adds its stages
        ctx.recorder.stages = [dict(stage) for stage in deploy.stages or []]
    return ctx


async def run_deploy(db: Database, settings: Settings, deploy_id: int, holder: str) -> str:
    """Run a deploy claimed by the claim ``holder`` (its token: ``queue.Claim.holder``) to its
    end; returns the final status (``lost`` when another claim took it over: then this run
    wrote no outcome and left the hosts to it)."""
    # an outage as the run starts is waited out, as every later call of the run does
    ctx = await retried(build_context, db, settings, deploy_id)
    rec = ctx.recorder
    key = locks.deploy_key(ctx.project_id, ctx.env_name)
    owner = f"{worker_of(holder)}:deploy-{deploy_id}"
    hold = Ownership(db, ctx, key, owner, holder, settings.lock_lease_seconds)
    rec.owner = holder
    rec.on_lost = lambda: hold.lose(f"deploy #{deploy_id} was taken over by another worker")
    flusher = asyncio.create_task(rec.run_flusher())
    heartbeat: asyncio.Task[None] | None = None
    watcher: asyncio.Task[None] | None = None
    status: str = DeployStatus.FAILED
    error: dict[str, Any] | None = None
    locked = False
    try:
        started = time.monotonic()
        await retried(
            locks.acquire,
            db,
            key,
            owner=owner,
            deploy_id=deploy_id,
            holder=ctx.requested_by,
            lease=settings.lock_lease_seconds,
            label=f"{ctx.project.project} {ctx.env_name}",
        )
        locked = True
        ctx.owned_until = started + settings.lock_lease_seconds
        ctx.confirm_owner = hold.confirm
        heartbeat = asyncio.create_task(hold.run())
        watcher = asyncio.create_task(_watch_cancel(db, ctx))
        if ctx.rollout is None or ctx.rollout.next_batch == 0:  # not when a pause resumes
            try:
                await asyncio.to_thread(
                    notifications.emit_for_deploy, db, deploy_id, "deploy.started"
                )
            except Exception:  # a notification never stops a deploy
                log.warning("notifying the start of %s failed", deploy_id, exc_info=True)
        status = await runner.execute(ctx)
    except OwnershipLost as exc:
        status, error = LOST, runner.masked(runner.error_record(exc), rec.mask)
    except Cancelled as exc:
        status, error = DeployStatus.CANCELLED, runner.masked(runner.error_record(exc), rec.mask)
        rec.log(f"CANCELLED: {exc.message}")
    except Exception as exc:
        error = runner.masked(runner.error_record(exc), rec.mask)
        rec.log(f"FAILED: {error['message']}")
        if not isinstance(exc, FerrymanError):
            log.error("deploy %s crashed:\n%s", deploy_id, traceback.format_exc())
            rec.log(traceback.format_exc())
    finally:
        for task in (heartbeat, watcher):
            if task is not None:
                task.cancel()
        if ctx.lost and status != LOST:  # lost while failing or cancelling: still not ours
            status, error = LOST, {"code": OwnershipLost.code, "message": ctx.lost}
        await ctx.executor.close()
        await asyncio.to_thread(runner.keep_build, ctx, status)
        await asyncio.to_thread(shutil.rmtree, ctx.workspace, True)
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        # the lock goes with the outcome; conditional on its owner, it never releases a
        # lock someone else holds now
        hold_lock = (key, owner) if locked else None
        status = await _record_end(db, ctx, holder, status, error, hold_lock)
        if locked and status == LOST:
            try:
                await retried(locks.release, db, key, owner=owner)
            except Exception:  # it runs out with its lease
                log.warning("releasing the lock of deploy %s failed", deploy_id, exc_info=True)
    return status


async def _record_end(
    db: Database,
    ctx: Context,
    holder: str,
    status: str,
    error: dict[str, Any] | None,
    lock: tuple[str, str] | None,
) -> str:
    """Write how the run ended, waiting for the database through an outage: the records,
    then the outcome with the lock's release — only while the claim ``holder`` still holds
    the deploy. Returns the status (``lost`` when it did not)."""
    rec, deploy_id = ctx.recorder, ctx.deploy_id
    if status != LOST:
        if ctx.env.mode == "push" and status != DeployStatus.PAUSED:
            # hosts the run never changed, or changed and put back before they were marked
            settled = HostStatus.SUCCESS if status == DeployStatus.SUCCESS else HostStatus.UNCHANGED
            rec.settle_hosts((t.key for t in ctx.targets), settled)
        rec.log(f"{ctx.kind} #{deploy_id} {status}")
        try:
            await rec.flush_all()
        except Exception:  # the outcome matters more than the last lines
            log.warning("writing the last records of deploy %s failed", deploy_id, exc_info=True)
        if rec.refused:
            status = LOST
    if status == LOST:
        await _note_lost(db, ctx, worker_of(holder))
        # only the lock was lost (the lease is still ours): fail it, hosts as they are
        await retried(queue.finish_if_held, db, deploy_id, holder, DeployStatus.FAILED, error, lock)
        return status
    if status == DeployStatus.PAUSED and ctx.rollout is not None:
        await retried(rollouts.pause, db, deploy_id, ctx.rollout, holder, lock)
    elif not await retried(queue.finish_if_held, db, deploy_id, holder, status, error, lock):
        log.warning("deploy %s was taken over; its %s is not recorded", deploy_id, status)
        status = LOST
    return status


async def _note_lost(db: Database, ctx: Context, worker: str) -> None:
    """The one line a run that lost its deploy still writes (appended to the log): its stage
    and host records now belong to the new owner and are left alone."""
    log.warning("deploy %s: %s; %s stopped", ctx.deploy_id, ctx.lost, worker)
    line = LogRecord(
        host="",
        stage="",
        text=f"{worker} stopped: {ctx.lost}; the new owner puts the hosts in order",
        ts=utcnow(),
    )
    try:
        await asyncio.to_thread(deploy_records.append_logs, db, ctx.deploy_id, [line])
    except Exception:
        log.warning("noting the loss of deploy %s failed", ctx.deploy_id, exc_info=True)


class Ownership:
    """A run's hold on its deploy: the claim's lease (renewed by its holder token) and the
    project lock, both extended every lease/3. When the claim no longer holds the deploy
    (another claim took it over — on another worker or on this one) or the lock is gone,
    ``ctx.lost`` says so and the pipeline stops at its next checkpoint or host action
    (``OwnershipLost``). While no heartbeat gets through (a database outage), the lease is
    assumed ours until it would have run out; after that, the next host action waits until a
    heartbeat says whether it still is (``confirm``)."""

    def __init__(
        self, db: Database, ctx: Context, key: str, owner: str, holder: str, lease: float
    ) -> None:
        self.db, self.ctx, self.key, self.owner = db, ctx, key, owner
        self.holder, self.lease = holder, lease
        self._confirming = asyncio.Lock()

    async def beat(self) -> None:
        """Extend both; raises when the database cannot be reached."""
        ctx = self.ctx
        started = time.monotonic()
        ours = await asyncio.to_thread(
            queue.renew_lease, self.db, ctx.deploy_id, self.holder, self.lease
        )
        if not ours:
            self.lose(f"deploy #{ctx.deploy_id} was taken over by another worker")
            return
        locked = await asyncio.to_thread(
            locks.heartbeat, self.db, self.key, owner=self.owner, lease=self.lease
        )
        if not locked:
            self.lose(f"the lock of {ctx.project.project} {ctx.env_name} is no longer held")
            return
        ctx.owned_until = started + self.lease

    def lose(self, reason: str) -> None:
        if not self.ctx.lost:
            self.ctx.lost = reason
            log.warning("deploy %s: %s; stopping", self.ctx.deploy_id, reason)

    async def run(self) -> None:
        answered = True
        while not self.ctx.lost:
            # after a missed beat, the next one soon (``held.RETRY_BEAT``): a beat in flight
            # when the database returns may have hung for the connect timeout, and the first
            # worker back waits only that and half a lease before it takes deploys over
            await asyncio.sleep(next_beat(max(1.0, self.lease / 3), answered))
            try:
                await self.beat()
            except Exception:  # a missed beat is retried; the lease outlives a few of them
                log.warning("heartbeat for deploy %s failed", self.ctx.deploy_id, exc_info=answered)
                answered = False
            else:
                answered = True

    async def confirm(self) -> None:
        """Wait until a heartbeat gets through: the deploy is then ours again, or lost."""
        async with self._confirming:
            while not self.ctx.lost and time.monotonic() >= self.ctx.owned_until:
                try:
                    await self.beat()
                except Exception:
                    log.warning("deploy %s waits for the database", self.ctx.deploy_id)
                    await asyncio.sleep(1.0)


async def _watch_cancel(db: Database, ctx: Context) -> None:
    """Poll for a cancel request; the pipeline stops at its next safe point."""
    while not ctx.cancel_reason:
        await asyncio.sleep(CANCEL_POLL)
        try:
            reason = await asyncio.to_thread(queue.cancel_requested, db, ctx.deploy_id)
        except Exception:
            log.warning("reading the cancel flag of %s failed", ctx.deploy_id, exc_info=True)
            continue
        if reason:
            ctx.cancel_reason = reason
            ctx.recorder.log(f"stopping: {reason}")
