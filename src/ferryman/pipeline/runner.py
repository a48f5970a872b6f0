"""Runs one deploy or rollback from its database record to its final status.

Order: prepare (lock, workspace, connections, probe) → pre_deploy → checkout → post_deploy →
transfer (with the config files) → pre_release → switch → post_release → cleanup; a config-only
deploy takes the live release instead of pre_deploy → checkout → post_deploy. A failure before
the switch removes this deploy's release dirs (every host stays on its old release); a failure
from the switch on puts every switched host back. The lock is always released and the
workspace always removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
import traceback
from typing import Any

from ferryman.config.project import parse_project
from ferryman.config.settings import Settings
from ferryman.db.models import utcnow
from ferryman.db.session import Database
from ferryman.domain.masking import Masker
from ferryman.domain.rollout import Rollout
from ferryman.errors import Cancelled, Conflict, FerrymanError, RemoteError
from ferryman.pipeline import (
    builds,
    checkout,
    cleanup,
    configs,
    prepare,
    pull,
    release,
    rollback,
    rollout,
    tasks,
    transfer,
)
from ferryman.pipeline.context import Context, OwnershipLost, new_context
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
from ferryman.services.deploy_records import LogRecord
from ferryman.services.space_access import space_access
from ferryman.vcs.base import Resolved

log = logging.getLogger(__name__)
CANCEL_POLL = 1.0  # seconds between looks at the cancel flag


def build_context(db: Database, settings: Settings, deploy_id: int) -> Context:
    deploy, project = deploys.load(db, deploy_id)
    ctx: Context
    variables = {  # secret values are opened only here, in the worker's memory
        k: db.box.open(v) if is_sealed(v) else v for k, v in deploy.variables.items()
    }
    files, host_ids = (
        config_files.open_bundle(db.box, deploy.config_bundle) if deploy.config_bundle else ([], {})
    )
    ctx = new_context(
        db,
        settings,
        parse_project(deploy.config),
        deploy.env,
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
    return ctx


async def _deploy(ctx: Context) -> str:
    """``success``, or ``paused`` (a gray release waiting after its canary)."""
    rec = ctx.recorder
    with rec.stage(prepare.STAGE, len(ctx.targets)):
        await prepare.run(ctx)
    if ctx.rollout is not None and ctx.rollout.next_batch > 0:
        return await _resume(ctx, ctx.rollout)
    # Hosts link their live release while this host checks out and builds.
    ctx.prelink_task = asyncio.create_task(transfer.prelink(ctx))
    try:
        ctx.checkpoint()
        configs.check_shared(ctx)
        kept = builds.find(ctx.settings, ctx.retry_of) if ctx.retry_of else None
        if ctx.kind == "config":
            with rec.stage(checkout.LIVE, 0):
                await checkout.adopt_live(ctx)
        elif kept is not None:
            with rec.stage(checkout.REUSE, 0):
                await checkout.reuse_build(ctx, *kept)
        else:
            if ctx.retry_of:
                rec.log(f"the build of deploy #{ctx.retry_of} is gone; building again")
            with rec.stage("pre_deploy", 0):
                await tasks.local_task(ctx, "pre_deploy", cwd=ctx.workspace)
            ctx.checkpoint()
            with rec.stage(checkout.STAGE, 0):
                await checkout.run(ctx)
            ctx.checkpoint()
            with rec.stage("post_deploy", 0):
                await tasks.local_task(ctx, "post_deploy", cwd=ctx.tree)
        ctx.checkpoint()
        with rec.stage(transfer.STAGE, len(ctx.targets)):
            await transfer.run(ctx)
        ctx.checkpoint()
        if ctx.rollout is not None:
            asked = await asyncio.to_thread(rollouts.take_request, ctx.db, ctx.deploy_id)
            if await rollout.run(ctx, ctx.rollout, asked) == rollout.PAUSED:
                return "paused"
        else:
            await release.run(ctx)
        ctx.committed = True
    except BaseException:
        await _undo(ctx)
        raise
    with rec.stage(cleanup.STAGE, len(ctx.targets)):
        await cleanup.prune(ctx)
    return "success"


async def _resume(ctx: Context, state: Rollout) -> str:
    """A paused gray release, continued (or aborted) on whichever worker claimed it: the
    release is already on every host; switched hosts are known from the saved state."""
    missing = [key for key, facts in ctx.facts.items() if not facts.releases.get(ctx.release)]
    if missing:
        raise Conflict(
            f"release {ctx.release} is no longer complete on {', '.join(sorted(missing))}; "
            "abort this rollout and deploy again"
        )
    ctx.created = {t.key for t in ctx.targets}
    ctx.switched = [k for k in state.switched]
    ctx.switching = bool(ctx.switched)
    for key, link in state.previous.items():  # where each host was before this rollout
        if key in ctx.facts:
            ctx.facts[key].link = link
    asked = await asyncio.to_thread(rollouts.take_request, ctx.db, ctx.deploy_id)
    ctx.recorder.log(
        f"resuming the rollout at batch {state.next_batch + 1}/{len(state.batches)}"
        + (f" ({asked})" if asked else "")
    )
    try:
        ctx.switching = True
        if await rollout.run(ctx, state, asked) == rollout.PAUSED:
            return "paused"
        ctx.committed = True
    except BaseException:
        await _undo(ctx)
        raise
    with ctx.recorder.stage(cleanup.STAGE, len(ctx.targets)):
        await cleanup.prune(ctx)
    return "success"


async def _rollback(ctx: Context) -> None:
    only = None
    if ctx.options.get("emergency"):  # look only for the releases the records point to
        only = await asyncio.to_thread(rollback.candidates, ctx)
    with ctx.recorder.stage(prepare.STAGE, len(ctx.targets)):
        await prepare.run(ctx, only=only)
    try:
        await rollback.run(ctx)
    except BaseException:
        await _undo(ctx)
        raise


async def _undo(ctx: Context) -> None:
    """Leave every host on a complete release: revert switched hosts or drop partial dirs.
    Not when the deploy is no longer ours: its new owner puts the hosts in order."""
    if ctx.lost:
        return
    ctx.undoing = True
    try:
        if ctx.prelink_task is not None:
            await ctx.prelink_task  # let early links finish before removing them
        if ctx.switching:
            await release.revert(ctx)
        else:
            await cleanup.remove_partial(ctx)
    except Exception as exc:  # the original failure is what the user must see
        ctx.recorder.log(f"could not undo everything: {exc}", stage="undo")


def error_record(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, FerrymanError):
        data = exc.to_dict()
        data["message"] = str(exc) if isinstance(exc, RemoteError) else exc.message
        return data
    return {"code": "internal", "message": f"{type(exc).__name__}: {exc}", "details": {}}


def _keep_build(ctx: Context, status: str) -> None:
    """A failed deploy's build is kept for retries (the newest few, see ``builds.KEEP``)."""
    try:
        if status != "success" and ctx.kind == "deploy" and ctx.resolved is not None:
            builds.keep(ctx.settings, ctx.deploy_id, ctx.tree, ctx.resolved)
    except OSError:
        log.warning("keeping the build of deploy %s failed", ctx.deploy_id, exc_info=True)


def masked(record: dict[str, Any], mask: Masker) -> dict[str, Any]:
    """The error record with secret values masked in every string it holds."""
    if not mask:
        return record
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, str):
            out[key] = mask(value)
        elif isinstance(value, dict):
            out[key] = masked(value, mask)
        else:
            out[key] = value
    return out


async def run_deploy(db: Database, settings: Settings, deploy_id: int, worker: str) -> str:
    """Run a claimed deploy to its end; returns the final status (``lost`` when another
    worker took it over: then this run wrote no outcome and left the hosts to it)."""
    ctx = await asyncio.to_thread(build_context, db, settings, deploy_id)
    rec = ctx.recorder
    key = locks.deploy_key(ctx.project.project, ctx.env_name)
    owner = f"{worker}:deploy-{deploy_id}"
    hold = Ownership(ctx, key, owner, worker, settings.lock_lease_seconds)
    flusher = asyncio.create_task(rec.run_flusher())
    heartbeat: asyncio.Task[None] | None = None
    watcher: asyncio.Task[None] | None = None
    status, error = "failed", None
    locked = False
    try:
        started = time.monotonic()
        await asyncio.to_thread(
            locks.acquire,
            db,
            key,
            owner=owner,
            deploy_id=deploy_id,
            holder=ctx.requested_by,
            lease=settings.lock_lease_seconds,
        )
        locked = True
        ctx.owned_until = started + settings.lock_lease_seconds
        ctx.confirm_owner = hold.confirm
        heartbeat = asyncio.create_task(hold.run())
        watcher = asyncio.create_task(_watch_cancel(ctx))
        if ctx.rollout is None or ctx.rollout.next_batch == 0:  # not when a pause resumes
            try:
                await asyncio.to_thread(
                    notifications.emit_for_deploy, db, deploy_id, "deploy.started"
                )
            except Exception:  # a notification never stops a deploy
                log.warning("notifying the start of %s failed", deploy_id, exc_info=True)
        rec.log(
            f"{ctx.kind} #{deploy_id} of {ctx.project.project} {ctx.env_name} "
            f"to {len(ctx.targets)} host(s) by {ctx.requested_by}"
        )
        if ctx.env.mode == "pull":
            await pull.run(ctx)  # the hosts report their own status
            status = "success"
        elif ctx.kind == "rollback":
            await _rollback(ctx)
            status = "success"
        else:
            status = await _deploy(ctx)
        ctx.checkpoint()  # no outcome, not even success, once the deploy is not ours
        if status == "success" and ctx.env.mode == "push":
            failed = ctx.rollout.failed if ctx.rollout is not None else {}
            for target in ctx.targets:
                if target.key not in failed:
                    rec.host(target.key, status="success")
    except OwnershipLost as exc:
        status, error = "lost", masked(error_record(exc), rec.mask)
    except Cancelled as exc:
        status, error = "cancelled", masked(error_record(exc), rec.mask)
        rec.log(f"CANCELLED: {exc.message}")
    except Exception as exc:
        error = masked(error_record(exc), rec.mask)
        rec.log(f"FAILED: {error['message']}")
        if not isinstance(exc, FerrymanError):
            log.error("deploy %s crashed:\n%s", deploy_id, traceback.format_exc())
            rec.log(traceback.format_exc())
    finally:
        for task in (heartbeat, watcher):
            if task is not None:
                task.cancel()
        if ctx.lost and status != "lost":  # lost while failing or cancelling: still not ours
            status, error = "lost", {"code": OwnershipLost.code, "message": ctx.lost}
        await ctx.executor.close()
        await asyncio.to_thread(_keep_build, ctx, status)
        await asyncio.to_thread(shutil.rmtree, ctx.workspace, True)
        if locked:  # conditional on the owner: never releases a lock someone else holds now
            await asyncio.to_thread(locks.release, db, key, owner=owner)
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        if status == "lost":
            await _note_lost(ctx, worker)
            # only the lock was lost (the lease is still ours): fail it, hosts as they are
            await asyncio.to_thread(queue.finish_if_owner, db, deploy_id, worker, "failed", error)
        else:
            rec.log(f"{ctx.kind} #{deploy_id} {status}")
            await rec.flush()
            if status == "paused" and ctx.rollout is not None:
                await asyncio.to_thread(rollouts.pause, db, deploy_id, ctx.rollout, worker)
            elif not await asyncio.to_thread(
                queue.finish_if_owner, db, deploy_id, worker, status, error
            ):
                log.warning("deploy %s was taken over; its %s is not recorded", deploy_id, status)
                status = "lost"
    return status


async def _note_lost(ctx: Context, worker: str) -> None:
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
        await asyncio.to_thread(deploy_records.append_logs, ctx.db, ctx.deploy_id, [line])
    except Exception:
        log.warning("noting the loss of deploy %s failed", ctx.deploy_id, exc_info=True)


class Ownership:
    """A run's hold on its deploy: the job's lease and the project lock, extended every
    lease/3. When the lease is no longer this worker's (another took the deploy over) or the
    lock is gone, ``ctx.lost`` says so and the pipeline stops at its next checkpoint or host
    action (``OwnershipLost``). While no heartbeat gets through (a database outage), the
    lease is assumed ours until it would have run out; after that, the next host action
    waits until a heartbeat says whether it still is (``confirm``)."""

    def __init__(self, ctx: Context, key: str, owner: str, worker: str, lease: float) -> None:
        self.ctx, self.key, self.owner, self.worker, self.lease = ctx, key, owner, worker, lease
        self._confirming = asyncio.Lock()

    async def beat(self) -> None:
        """Extend both; raises when the database cannot be reached."""
        ctx = self.ctx
        started = time.monotonic()
        ours = await asyncio.to_thread(
            queue.extend_lease, ctx.db, ctx.deploy_id, self.worker, self.lease
        )
        if not ours:
            self.lose(f"deploy #{ctx.deploy_id} was taken over by another worker")
            return
        locked = await asyncio.to_thread(
            locks.heartbeat, ctx.db, self.key, owner=self.owner, lease=self.lease
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
        while not self.ctx.lost:
            await asyncio.sleep(max(1.0, self.lease / 3))
            try:
                await self.beat()
            except Exception:  # a missed beat is retried; the lease outlives a few of them
                log.warning("heartbeat for deploy %s failed", self.ctx.deploy_id, exc_info=True)

    async def confirm(self) -> None:
        """Wait until a heartbeat gets through: the deploy is then ours again, or lost."""
        async with self._confirming:
            while not self.ctx.lost and time.monotonic() >= self.ctx.owned_until:
                try:
                    await self.beat()
                except Exception:
                    log.warning("deploy %s waits for the database", self.ctx.deploy_id)
                    await asyncio.sleep(1.0)


async def _watch_cancel(ctx: Context) -> None:
    """Poll for a cancel request; the pipeline stops at its next safe point."""
    while not ctx.cancel_reason:
        await asyncio.sleep(CANCEL_POLL)
        try:
            reason = await asyncio.to_thread(queue.cancel_requested, ctx.db, ctx.deploy_id)
        except Exception:
            log.warning("reading the cancel flag of %s failed", ctx.deploy_id, exc_info=True)
            continue
        if reason:
            ctx.cancel_reason = reason
            ctx.recorder.log(f"stopping: {reason}")
