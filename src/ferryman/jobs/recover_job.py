"""Recovery as a job: a deploy taken over from a dead worker (``services.queue.take_over_lost``,
a new claim with its own holder token) is held like a run (the project lock, the claim's lease
renewed by a heartbeat), handed to ``pipeline.recover.put_in_order``, and ended with one outcome
written, with the lock's release, only while that claim still holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from typing import Any

from ferryman.config.settings import Settings
from ferryman.db.claims import worker_of
from ferryman.db.models import Deploy
from ferryman.db.outage import retried
from ferryman.db.session import Database
from ferryman.domain.statuses import DeployStatus, StageStatus
from ferryman.errors import FerrymanError
from ferryman.jobs.deploy_job import Ownership, build_context
from ferryman.pipeline.recover import Abandoned, lost_error, put_in_order
from ferryman.services import deploys, locks, queue

log = logging.getLogger(__name__)


async def recover(db: Database, settings: Settings, deploy_id: int, holder: str) -> bool:
    """Put the hosts of a deploy taken over from a dead worker in order and end it, as the
    claim ``holder`` (the take-over's token); False when the project lock is still held (try
    again on the next round)."""
    worker = worker_of(holder)
    ctx = await asyncio.to_thread(build_context, db, settings, deploy_id)
    deploy, _ = await asyncio.to_thread(deploys.load, db, deploy_id)
    key = locks.deploy_key(ctx.project_id, ctx.env_name)
    owner = f"{worker}:recover-{deploy_id}"
    try:
        await asyncio.to_thread(
            locks.acquire,
            db,
            key,
            owner=owner,
            deploy_id=deploy_id,
            holder="recovery",
            lease=settings.lock_lease_seconds,
            label=f"{ctx.project.project} {ctx.env_name}",
        )
    except FerrymanError:
        await ctx.executor.close()
        return False
    ctx.undoing = True
    ctx.release = deploy.release_name if deploy.kind != "rollback" else ""
    rec = ctx.recorder
    rec.owner = holder
    # the same hold on the deploy as a run's: a recovery frozen past its lease stops before
    # its next host action or write once another worker has taken the deploy from it
    hold = Ownership(db, ctx, key, owner, holder, settings.lock_lease_seconds)
    ctx.confirm_owner = hold.confirm
    # the claim is confirmed before anything is done: this worker may have been frozen since
    # it took the deploy over (or since its last attempt), and another worker may have ended
    # it and started the next deploy meanwhile
    try:
        await hold.beat()
    except Exception:
        await ctx.executor.close()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(locks.release, db, key, owner=owner)
        raise
    if ctx.lost:
        log.warning("deploy %s is no longer this worker's to recover: %s", deploy_id, ctx.lost)
        await ctx.executor.close()
        await retried(locks.release, db, key, owner=owner)
        return True
    heartbeat = asyncio.create_task(hold.run())
    rec.on_lost = lambda: hold.lose(f"deploy #{deploy_id} was taken over by another worker")
    # keep the dead worker's stage record; what it was in the middle of is marked lost
    rec.stages = [
        {**stage, "status": StageStatus.LOST}
        if stage.get("status") == StageStatus.RUNNING
        else dict(stage)
        for stage in deploy.stages
    ]
    flusher = asyncio.create_task(rec.run_flusher())
    status: str = DeployStatus.FAILED
    error: dict[str, Any] | None = lost_error(worker, "")
    try:
        status, error = await put_in_order(ctx, _abandoned(deploy), worker)
    except Exception as exc:  # record it; the deploy still ends and the lock is released
        error = lost_error(worker, f"; recovery incomplete: {exc}")
        log.exception("recovering deploy %s", deploy_id)
    finally:
        heartbeat.cancel()
        await ctx.executor.close()
        # the dead run's workspace, when it ran on this machine (its build is not kept)
        await asyncio.to_thread(shutil.rmtree, ctx.workspace, True)
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        rec.log(f"{deploy.kind} #{deploy_id} {status} (recovered by {worker})")
        with contextlib.suppress(Exception):
            await rec.flush_all()
        if ctx.lost or not await retried(
            queue.finish_if_held, db, deploy_id, holder, status, error, (key, owner)
        ):
            log.warning("recovery of deploy %s stopped: %s", deploy_id, ctx.lost or "not ours")
            await retried(locks.release, db, key, owner=owner)
    return True


def _abandoned(deploy: Deploy) -> Abandoned:
    name = deploy.target_release or deploy.release_name or ""
    return Abandoned(
        kind=deploy.kind,
        release_name=deploy.release_name or "",
        target="" if "," in name else name,
        stages={str(s.get("name")): str(s.get("status")) for s in deploy.stages or []},
        emergency=bool((deploy.options or {}).get("emergency")),
        out_of_lb=tuple(str(k) for k in (deploy.rollout or {}).get("out_of_lb") or ()),
    )
