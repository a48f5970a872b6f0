"""Recovering a deploy whose worker died (SIGKILL, lost machine): another worker takes over its
lease and its project lock, looks at every host, and leaves each on a complete release —
switched hosts go back to the release they had before, this deploy's partial or unused
release dirs and early links are removed — then records what every host really serves and
ends the deploy ``failed`` with ``worker_lost``. Nothing is resumed: redeploying is cheap and
safe, guessing what a dead process had half done is not."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import select

from ferryman.commands import remote as cmd
from ferryman.config.settings import Settings
from ferryman.db.models import DeployHost
from ferryman.db.session import Database
from ferryman.errors import FerrymanError
from ferryman.pipeline import prepare
from ferryman.pipeline.context import Context
from ferryman.pipeline.runner import build_context
from ferryman.remote.executor import Target
from ferryman.services import agents, deploy_records, deploys, locks

log = logging.getLogger(__name__)
STAGE = "recover"


def _previous(db: Database, deploy_id: int) -> dict[str, str]:
    with db.read() as s:
        rows = s.scalars(select(DeployHost).where(DeployHost.deploy_id == deploy_id))
        return {r.host: r.previous_release for r in rows if r.previous_release}


async def recover(db: Database, settings: Settings, deploy_id: int, worker: str) -> bool:
    """Returns False when the project lock is still held (try again on the next round)."""
    ctx = await asyncio.to_thread(build_context, db, settings, deploy_id)
    deploy, _ = await asyncio.to_thread(deploys.load, db, deploy_id)
    key = locks.deploy_key(ctx.project.project, ctx.env_name)
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
        )
    except FerrymanError:
        await ctx.executor.close()
        return False
    ctx.undoing = True
    ctx.release = deploy.release_name
    # keep the dead worker's stage record; what it was in the middle of is marked lost
    ctx.recorder.stages = [
        {**stage, "status": "lost"} if stage.get("status") == "running" else dict(stage)
        for stage in deploy.stages
    ]
    flusher = asyncio.create_task(ctx.recorder.run_flusher())
    problem = ""
    try:
        ctx.recorder.log(f"the worker running #{deploy_id} was lost; {worker} puts hosts in order")
        with ctx.recorder.stage(STAGE, len(ctx.targets)):
            if ctx.env.mode == "pull":  # no SSH: stop handing it out; hosts keep a release
                await asyncio.to_thread(agents.cancel_open, db, deploy_id)
            else:
                await _put_hosts_in_order(ctx, _previous(db, deploy_id))
    except Exception as exc:  # record it; the deploy still ends and the lock is released
        problem = f"; recovery incomplete: {exc}"
        log.exception("recovering deploy %s", deploy_id)
    finally:
        await ctx.executor.close()
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        await ctx.recorder.flush()
        await asyncio.to_thread(
            deploys.finish,
            db,
            deploy_id,
            "failed",
            {
                "code": "worker_lost",
                "message": "the worker running this deploy stopped" + problem,
                "details": {"recovered_by": worker},
            },
        )
        await asyncio.to_thread(locks.release, db, key, owner=owner)
    return True


async def _put_hosts_in_order(ctx: Context, previous: dict[str, str]) -> None:
    await prepare.probe_hosts(ctx, stage=STAGE, refuse=False)
    new = ctx.release
    live_now: dict[str, str | None] = {}
    removed: dict[str, list[str]] = {}

    async def one(target: Target) -> None:
        facts = ctx.facts[target.key]
        live = facts.live_release(ctx.layout)
        before = previous.get(target.key)
        if ctx.kind == "deploy" and new and live == new and before and before in facts.releases:
            await ctx.remote(
                target,
                cmd.switch(ctx.layout, ctx.layout.release(before), ctx.deploy_id),
                stage=STAGE,
                shown=f"switch {ctx.layout.webroot} back -> {before}",
            )
            live = before
            ctx.recorder.host(target.key, status="reverted")
        live_now[target.key] = live
        await ctx.remote(target, cmd.remove_staging(ctx.layout, ctx.deploy_id), stage=STAGE)
        if ctx.kind == "deploy" and new and live != new and new in facts.releases:
            await ctx.remote(target, cmd.remove_releases(ctx.layout, [new]), stage=STAGE)
            removed[target.key] = [new]

    try:
        await ctx.each_host(STAGE, one)
    finally:
        await asyncio.to_thread(
            deploy_records.set_live, ctx.db, ctx.project_id, ctx.env_name, ctx.deploy_id, live_now
        )
        await asyncio.to_thread(
            deploy_records.mark_removed, ctx.db, ctx.project_id, ctx.env_name, removed
        )
