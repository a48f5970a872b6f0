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
from ferryman.errors import Cancelled, Conflict, RolloutFailed
from ferryman.pipeline import checkout, tasks, transfer
from ferryman.pipeline.context import Context
from ferryman.pipeline.package import build_manifest, write_package
from ferryman.services import agents, deploy_records, deploy_views
from ferryman.services.projects import space_of_project

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
    """Until every host of ``hosts`` has a final status (or is unreachable)."""
    pull = ctx.env.pull
    while True:
        ctx.checkpoint()
        await asyncio.to_thread(
            agents.mark_unreachable,
            ctx.db,
            ctx.deploy_id,
            pull.unreachable_after,
            pull.unreachable_after + pull.download_timeout + ctx.env.task_timeout * 3,
        )
        found = await asyncio.to_thread(agents.tasks_of, ctx.db, ctx.deploy_id, action)
        states = {h: found[h].status for h in hosts if h in found}
        if all(s in agents.FINAL for s in states.values()):
            return states
        await asyncio.sleep(POLL)


async def run(ctx: Context) -> None:
    """A deploy (kind ``deploy``) or rollback to a pull-mode environment."""
    if ctx.kind == "config":
        raise Conflict("config-only deploys are not available in pull mode yet")
    space_id = await asyncio.to_thread(space_of_project, ctx.db, ctx.project_id)
    hosts = [t.key for t in ctx.targets]
    if ctx.kind == "rollback":
        await _rollback(ctx, space_id, hosts)
        return
    info = await build(ctx)
    await asyncio.to_thread(deploy_records.set_options, ctx.db, ctx.deploy_id, {"artifact": info})
    state = ctx.rollout or rules.Rollout(batches=[hosts])
    strategy = ctx.env.strategy or Strategy()
    budget = rules.amount(strategy.max_failed, len(hosts), "strategy/max_failed")
    await asyncio.to_thread(
        agents.create_tasks, ctx.db, ctx.deploy_id, space_id, hosts, "deploy", ctx.release
    )
    await asyncio.to_thread(agents.host_rows, ctx.db, ctx.deploy_id)
    failed: dict[str, str] = {}
    try:
        with ctx.recorder.stage(STAGE, len(hosts)):
            for index, batch in enumerate(state.batches):
                ctx.recorder.log(
                    f"batch {index + 1}/{len(state.batches)} is due: {', '.join(batch)}"
                )
                await asyncio.to_thread(agents.make_due, ctx.db, ctx.deploy_id, batch)
                states = await _wait(ctx, batch, "deploy")
                for host, status in states.items():
                    ok = status in ("success", "skipped")
                    ctx.recorder.stage_host(STAGE, host, ok, 0.0)
                    if not ok:
                        failed[host] = status
                state.next_batch = index + 1
                if len(failed) > budget:
                    host = next(iter(failed))
                    await _tell_rollback(ctx, space_id, failed)
                    raise RolloutFailed(
                        f"{len(failed)} host(s) failed, {budget} allowed: {host} is {failed[host]}",
                        host=host,
                        stage="post-deploy",
                        failed=failed,
                    )
    except Cancelled:
        await asyncio.to_thread(agents.cancel_open, ctx.db, ctx.deploy_id)
        raise
    if failed:
        ctx.recorder.log(f"done; within max_failed: {failed}")
    await asyncio.to_thread(prune_artifacts, ctx)


def prune_artifacts(ctx: Context) -> None:
    """Keep the artifacts of the newest ``keep_releases`` deploys of this environment (a host
    that rolls back needs none: its old releases are on disk)."""
    from sqlalchemy import select

    from ferryman.db.models import Deploy

    with ctx.db.read() as s:
        ids = s.scalars(
            select(Deploy.id)
            .where(Deploy.project_id == ctx.project_id, Deploy.env == ctx.env_name)
            .order_by(Deploy.id.desc())
        ).all()
    root = ctx.settings.home / "artifacts"
    for deploy_id in ids[ctx.env.keep_releases :]:
        shutil.rmtree(root / f"deploy-{deploy_id}", ignore_errors=True)


async def _tell_rollback(ctx: Context, space_id: int, failed: dict[str, str]) -> None:
    """Stop handing out the deploy; hosts that switched roll back on their next poll."""
    await asyncio.to_thread(agents.cancel_open, ctx.db, ctx.deploy_id)
    found = await asyncio.to_thread(agents.tasks_of, ctx.db, ctx.deploy_id, "deploy")
    switched = {h: t.previous for h, t in found.items() if t.status == "success" and t.previous}
    if not switched:
        return
    ctx.recorder.log(f"telling {', '.join(switched)} to roll back")
    await asyncio.to_thread(
        agents.create_tasks,
        ctx.db,
        ctx.deploy_id,
        space_id,
        list(switched),
        "rollback",
        "",
        switched,
    )
    await asyncio.to_thread(agents.make_due, ctx.db, ctx.deploy_id, list(switched), "rollback")
    with ctx.recorder.stage("rollback", len(switched)):
        states = await _wait(ctx, list(switched), "rollback")
    for host, status in states.items():
        ctx.recorder.stage_host("rollback", host, status == "success", 0.0)


async def _rollback(ctx: Context, space_id: int, hosts: list[str]) -> None:
    """Every host back to its previous release (from the records), on its next poll."""
    complete = await asyncio.to_thread(
        deploy_views.complete_releases, ctx.db, ctx.project_id, ctx.env_name
    )
    live = await asyncio.to_thread(deploy_views.live_releases, ctx.db, ctx.project_id, ctx.env_name)
    from ferryman.domain.release import previous_release

    targets = {}
    for host in hosts:
        name = ctx.target_release or previous_release(
            sorted(complete.get(host, set())), live.get(host)
        )
        if not name:
            raise Conflict(f"{host} has no earlier release to roll back to")
        targets[host] = name
    await asyncio.to_thread(
        agents.create_tasks, ctx.db, ctx.deploy_id, space_id, hosts, "rollback", "", targets
    )
    await asyncio.to_thread(agents.make_due, ctx.db, ctx.deploy_id, hosts, "rollback")
    with ctx.recorder.stage("rollback", len(hosts)):
        states = await _wait(ctx, hosts, "rollback")
    bad = {h: s for h, s in states.items() if s != "success"}
    for host, status in states.items():
        ctx.recorder.stage_host("rollback", host, status == "success", 0.0)
    if bad:
        host = next(iter(bad))
        raise RolloutFailed(f"{host} did not roll back: {bad[host]}", host=host, stage="rollback")
