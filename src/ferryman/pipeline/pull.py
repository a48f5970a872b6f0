"""A deploy to a pull-mode environment: build once here, package it (gzip: every host can
unpack it), then hand the deploy to the hosts batch by batch as they poll, and wait for their
reports. A host in batch N+1 is told nothing until batch N has reported. A host that fails
counts toward ``max_failed``; past it the deploy stops being handed out and hosts that already
switched are told to roll back on their next poll. Hosts that do not poll in time are
``unreachable``, never waited for forever."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from pathlib import Path

from ferryman.config.project import Strategy
from ferryman.domain import rollout as rules
from ferryman.domain.pull import FINAL
from ferryman.domain.statuses import PullTaskStatus
from ferryman.errors import Cancelled, Conflict, OwnershipLost, RolloutFailed
from ferryman.pipeline import checkout, tasks, transfer
from ferryman.pipeline.context import Context
from ferryman.pipeline.package import build_manifest, write_package

POLL = 0.5
STAGE = "hosts"


def artifact_dir(ctx: Context) -> Path:
    return ctx.settings.home / "artifacts" / f"deploy-{ctx.deploy_id}"


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


async def build(ctx: Context) -> dict[str, object]:
    """Check out, build (pre_deploy/post_deploy on this host) and package the release."""
    if ctx.workspace.exists():
        shutil.rmtree(ctx.workspace)
    ctx.workspace.mkdir(parents=True)
    with ctx.recorder.stage("pre_deploy", 0):
        await tasks.local_task(ctx, "pre_deploy", cwd=ctx.workspace)
    with ctx.recorder.stage(checkout.STAGE, 0):
        await checkout.run(ctx)
    with ctx.recorder.stage("post_deploy", 0):
        await tasks.local_task(ctx, "post_deploy", cwd=ctx.tree)
    with ctx.recorder.stage("package", 0):
        manifest = await asyncio.to_thread(build_manifest, ctx.tree, list(ctx.env.excludes))
        folder = artifact_dir(ctx)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{ctx.release}.tar.gz"
        size = await asyncio.to_thread(
            write_package,
            ctx.tree,
            sorted(manifest),
            manifest,
            transfer.version_text(ctx),
            path,
            "gzip",
        )
        digest = await asyncio.to_thread(_sha256, path)
        ctx.recorder.log(f"artifact {path.name}: {size / 1e6:.1f} MB, sha256 {digest}")
    return {"path": str(path), "sha256": digest, "size": size, "release": ctx.release}


async def _wait(ctx: Context, hosts: list[str], action: str) -> dict[str, str]:
    """Until every host of ``hosts`` has a final status or is past its deadline. An overdue
    rollback counts as ``unreachable`` here but stays handed out: the host rolls back
    whenever it polls again (it may have switched; the record then says where it is)."""
    pull = ctx.env.pull
    overdue: set[str] = set()
    while True:
        ctx.checkpoint()
        late = await ctx.store.mark_unreachable(
            pull.unreachable_after,
            pull.unreachable_after + pull.download_timeout + ctx.env.task_timeout * 3,
        )
        if action == "rollback":
            overdue.update(late)
        found = await ctx.store.host_tasks(action)
        states = {
            h: found[h].status if found[h].final or h not in overdue else PullTaskStatus.UNREACHABLE
            for h in hosts
            if h in found
        }
        if all(s in FINAL for s in states.values()):
            return states
        await asyncio.sleep(POLL)


async def run(ctx: Context) -> None:
    """A deploy (kind ``deploy``) or rollback to a pull-mode environment."""
    if ctx.kind == "config":
        raise Conflict("config-only deploys are not available in pull mode yet")
    hosts = [t.key for t in ctx.targets]
    if ctx.kind == "rollback":
        await _rollback(ctx, hosts)
        return
    info = await build(ctx)
    await ctx.store.set_options({"artifact": info})
    state = ctx.rollout or rules.Rollout(batches=[hosts])
    strategy = ctx.env.strategy or Strategy()
    budget = rules.amount(strategy.max_failed, len(hosts), "strategy/max_failed")
    await ctx.store.create_host_tasks(hosts, "deploy", ctx.release)
    await ctx.store.add_host_rows()
    failed: dict[str, str] = {}
    try:
        with ctx.recorder.stage(STAGE, len(hosts)):
            for index, batch in enumerate(state.batches):
                ctx.recorder.log(
                    f"batch {index + 1}/{len(state.batches)} is due: {', '.join(batch)}"
                )
                await ctx.store.make_due(batch)
                states = await _wait(ctx, batch, "deploy")
                for host, status in states.items():
                    ok = status in (PullTaskStatus.SUCCESS, PullTaskStatus.SKIPPED)
                    ctx.recorder.stage_host(STAGE, host, ok, 0.0)
                    if not ok:
                        failed[host] = status
                state.next_batch = index + 1
                if len(failed) > budget:
                    host = next(iter(failed))
                    ctx.undoing = True  # the rollback runs to its end, cancel or not
                    await _tell_rollback(ctx)
                    raise RolloutFailed(
                        f"{len(failed)} host(s) failed, {budget} allowed: {host} is {failed[host]}",
                        host=host,
                        stage="post-deploy",
                        failed=failed,
                    )
    except (RolloutFailed, OwnershipLost):
        raise  # told already; or no longer ours: the new owner recalls the hosts
    except Exception:
        # cancelled or failed, as a push deploy reverts its switched hosts: the hosts that
        # switched roll back, and one still running its script is refused and goes back
        ctx.undoing = True
        await _tell_rollback(ctx)
        raise
    if failed:
        ctx.recorder.log(f"done; within max_failed: {failed}")
    await prune_artifacts(ctx)


async def prune_artifacts(ctx: Context) -> None:
    """Keep the artifacts of the newest ``keep_releases`` deploys of this environment (a host
    that rolls back needs none: its old releases are on disk)."""
    ids = await ctx.store.environment_deploys()
    root = ctx.settings.home / "artifacts"
    for deploy_id in ids[ctx.env.keep_releases :]:
        await asyncio.to_thread(shutil.rmtree, root / f"deploy-{deploy_id}", True)


async def recover(ctx: Context) -> str:
    """A pull-mode deploy whose worker died (``pipeline.recover``): a rollback's tasks were
    all handed out, so the hosts are waited for — every host ends on its target; a deploy
    stops being handed out and the hosts that had switched are told to roll back, so none
    is left alone on the new release. Returns what happened, for the outcome."""
    if ctx.kind == "rollback":
        found = await ctx.store.host_tasks("rollback")
        states = await _wait(ctx, list(found), "rollback")
        bad = sorted(h for h, status in states.items() if status != PullTaskStatus.SUCCESS)
        return "; the hosts finished the rollback" + (f" except {', '.join(bad)}" if bad else "")
    # a host in the middle of its deploy script is refused its next report and stops before
    # its switch or switches back by itself; those that had switched are told to roll back
    told = await _tell_rollback(ctx)
    return "; the hosts that had switched were told to roll back" + (
        f" ({', '.join(sorted(told))})" if told else ""
    )


async def _tell_rollback(ctx: Context) -> set[str]:
    """Stop handing out the deploy (``cancel_host_tasks``); hosts that switched roll back on
    their next poll. Returns the hosts told."""
    await ctx.store.cancel_host_tasks()
    found = await ctx.store.host_tasks("deploy")
    # a host that went silent or was stopped after its go-ahead may have switched: it is
    # told too. Back to what it served before, or (a first deploy) to no release at all.
    # One that stays away past its deadline ends the wait but keeps the task (``_wait``).
    switched = {h: t.previous for h, t in found.items() if t.may_have_switched}
    if not switched:
        return set()
    ctx.recorder.log(f"telling {', '.join(switched)} to roll back")
    await ctx.store.create_host_tasks(list(switched), "rollback", "", switched)
    await ctx.store.make_due(list(switched), "rollback")
    with ctx.recorder.stage("rollback", len(switched)):
        states = await _wait(ctx, list(switched), "rollback")
    for host, status in states.items():
        ctx.recorder.stage_host("rollback", host, status == PullTaskStatus.SUCCESS, 0.0)
    return set(switched)


async def _rollback(ctx: Context, hosts: list[str]) -> None:
    """Every host to one release — the one asked for, or the last good one before what they
    serve — on its next poll; refused, naming them, when hosts have no record of it."""
    from ferryman.pipeline.rollback import target_release

    name = await target_release(ctx)
    if not name:
        raise Conflict("cannot roll back: no earlier good release on these hosts")
    good = await ctx.store.good_releases()
    missing = [h for h in hosts if name not in good.get(h, set())]
    if missing and not ctx.target_release:
        raise Conflict(f"cannot roll back to {name}: not complete on {', '.join(missing)}")
    targets = dict.fromkeys(hosts, name)
    await ctx.store.create_host_tasks(hosts, "rollback", "", targets)
    await ctx.store.make_due(hosts, "rollback")
    try:
        with ctx.recorder.stage("rollback", len(hosts)):
            states = await _wait(ctx, hosts, "rollback")
    except Cancelled:
        # a host that has not fetched its rollback yet never carries it out later
        await ctx.store.cancel_host_tasks()
        raise
    bad = {h: s for h, s in states.items() if s != PullTaskStatus.SUCCESS}
    for host, status in states.items():
        ctx.recorder.stage_host("rollback", host, status == PullTaskStatus.SUCCESS, 0.0)
    if bad:
        host = next(iter(bad))
        raise RolloutFailed(f"{host} did not roll back: {bad[host]}", host=host, stage="rollback")
