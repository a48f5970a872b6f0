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
import logging
from typing import Any

from ferryman.domain.masking import Masker
from ferryman.domain.rollout import Rollout
from ferryman.domain.statuses import DeployStatus, HostStatus, RolloutState
from ferryman.errors import Conflict, FerrymanError, OwnershipLost, RemoteError
from ferryman.pipeline import (
    builds,
    checkout,
    cleanup,
    configs,
    migrations,
    parked_trees,
    prepare,
    pull,
    release,
    rollback,
    rollout,
    tasks,
    transfer,
)
from ferryman.pipeline.context import Context

log = logging.getLogger(__name__)
CANCEL_POLL = 1.0  # seconds between looks at the cancel flag


async def execute(ctx: Context) -> DeployStatus:
    """Run the deploy the context describes, on a held deploy: ``success`` or ``paused``; a
    failure, cancel or loss is raised after the hosts were put back by the rules above."""
    rec = ctx.recorder
    rec.log(
        f"{ctx.kind} #{ctx.deploy_id} of {ctx.project.project} {ctx.env_name} "
        f"to {len(ctx.targets)} host(s) by {ctx.requested_by}"
    )
    if ctx.env.mode == "pull":
        await pull.run(ctx)  # the hosts report their own status
        status = DeployStatus.SUCCESS
    elif ctx.kind == "rollback":
        await _rollback(ctx)
        status = DeployStatus.SUCCESS
    else:
        status = await _deploy(ctx)
    ctx.checkpoint()  # no outcome, not even success, once the deploy is not ours
    if status == DeployStatus.SUCCESS and ctx.env.mode == "push":
        failed = ctx.rollout.failed if ctx.rollout is not None else {}
        for target in ctx.targets:
            if target.key not in failed:
                rec.host(target.key, status=HostStatus.SUCCESS)
    return status


async def _deploy(ctx: Context) -> DeployStatus:
    """``success``, or ``paused`` (a gray release waiting after its canary)."""
    rec = ctx.recorder
    prepare.start(ctx)  # the hosts are probed beside pre_deploy and the checkout
    if ctx.rollout is not None and ctx.rollout.next_batch > 0:
        await prepare.probed(ctx)
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
            ctx.built = True
        else:
            if ctx.retry_of:
                rec.log(
                    f"no whole build of deploy #{ctx.retry_of} is kept (its build failed, "
                    "or it was removed); building again"
                )
            with rec.stage("pre_deploy", 0):
                await tasks.local_task(ctx, "pre_deploy", cwd=ctx.workspace)
            ctx.checkpoint()
            with rec.stage(checkout.STAGE, 0):
                await checkout.run(ctx)
            ctx.checkpoint()
            with rec.stage("post_deploy", 0):
                await tasks.local_task(ctx, "post_deploy", cwd=ctx.tree)
            ctx.built = True
        ctx.checkpoint()
        with rec.stage(transfer.STAGE, len(ctx.targets)):
            await transfer.run(ctx)
        ctx.checkpoint()
        if ctx.rollout is not None:
            asked = await ctx.store.take_rollout_request()
            if await rollout.run(ctx, ctx.rollout, asked) == RolloutState.PAUSED:
                return DeployStatus.PAUSED
        else:
            await release.run(ctx)
        ctx.committed = True
    except BaseException as exc:
        switching = ctx.switching
        await _undo(ctx, exc)
        await migrations.record_after_failure(ctx, switching)
        raise
    await migrations.record(ctx)  # what the database has now, with the release
    with rec.stage(cleanup.STAGE, len(ctx.targets)):
        await cleanup.prune(ctx)
    return DeployStatus.SUCCESS


async def _resume(ctx: Context, state: Rollout) -> DeployStatus:
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
    asked = await ctx.store.take_rollout_request()
    ctx.recorder.log(
        f"resuming the rollout at batch {state.next_batch + 1}/{len(state.batches)}"
        + (f" ({asked})" if asked else "")
    )
    try:
        ctx.switching = True
        if await rollout.run(ctx, state, asked) == RolloutState.PAUSED:
            return DeployStatus.PAUSED
        ctx.committed = True
    except BaseException as exc:
        await _undo(ctx, exc)
        await migrations.record_after_failure(ctx, True)
        raise
    await migrations.record(ctx)
    with ctx.recorder.stage(cleanup.STAGE, len(ctx.targets)):
        await cleanup.prune(ctx)
    return DeployStatus.SUCCESS


async def _rollback(ctx: Context) -> None:
    only = None
    if ctx.options.get("emergency"):  # look only for the releases the records point to
        only = await rollback.candidates(ctx)
    with ctx.recorder.stage(prepare.STAGE, len(ctx.targets)):
        await prepare.run(ctx, only=only)
    try:
        await rollback.run(ctx)
    except BaseException as exc:
        await _undo(ctx, exc)
        raise
    await migrations.record(ctx)


async def _undo(ctx: Context, cause: BaseException) -> None:
    """Leave every host on a complete release: revert switched hosts or drop partial dirs.
    Not when the deploy is no longer ours (a heartbeat or a fenced write found it taken
    over): its new owner puts the hosts in order."""
    if isinstance(cause, OwnershipLost) and not ctx.lost:
        ctx.lost = cause.message
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


def keep_build(ctx: Context, status: str) -> None:
    """A failed deploy's whole build is kept for retries (the newest few, see ``builds.KEEP``);
    a build that itself failed or was stopped is not (a retry builds again); a successful
    one's tree is parked for the next checkout (``parked_trees``)."""
    try:
        parked_trees.park(ctx, status)
        if (
            status != DeployStatus.SUCCESS
            and ctx.kind == "deploy"
            and ctx.resolved is not None
            and ctx.built  # never a build that failed or was stopped half way
        ):
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
