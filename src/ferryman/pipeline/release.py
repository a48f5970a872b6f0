"""release: ``pre_release`` everywhere, then the atomic switch on every host, then
``post_release``; and the revert that puts switched hosts back where they were."""

from __future__ import annotations

from ferryman.commands import remote as cmd
from ferryman.domain.statuses import HostStatus
from ferryman.pipeline import tasks
from ferryman.pipeline.context import Context
from ferryman.remote.executor import Target

SWITCH = "switch"
REVERT = "revert"


async def switch_all(ctx: Context, releases: dict[str, str]) -> None:
    """Point each host's webroot at its release ({host: name}); remember who switched."""
    ctx.switching = True

    async def one(target: Target) -> None:
        release = releases[target.key]
        await ctx.remote(
            target,
            cmd.switch(ctx.layout, ctx.layout.release(release), ctx.deploy_id),
            stage=SWITCH,
            shown=f"switch {ctx.layout.webroot} -> {release}",
        )
        ctx.switched.append(target.key)

    try:
        await ctx.each_host(SWITCH, one, [ctx.target(k) for k in releases])
    finally:
        await ctx.store.set_live({k: releases[k] for k in ctx.switched if k in releases})


async def run(ctx: Context) -> None:
    new_dir = ctx.layout.release(ctx.release)
    with ctx.recorder.stage("pre_release", len(ctx.targets)):
        await tasks.remote_task(ctx, "pre_release", ctx.targets, cwd=new_dir)
    with ctx.recorder.stage(SWITCH, len(ctx.targets)):
        await switch_all(ctx, {t.key: ctx.release for t in ctx.targets})
    with ctx.recorder.stage("post_release", len(ctx.targets)):
        await tasks.remote_task(
            ctx, "post_release", ctx.targets, cwd=new_dir, delay=ctx.env.post_release_delay
        )


async def revert(ctx: Context, keys: list[str] | None = None) -> None:
    """Put every switched host (or those of ``keys``) back on what its webroot pointed to
    before this deploy."""
    hosts = [ctx.target(k) for k in (ctx.switched if keys is None else keys)]
    if not hosts:
        return
    live: dict[str, str | None] = {}

    async def one(target: Target) -> None:
        before = ctx.facts[target.key].link
        if before:
            await ctx.remote(
                target,
                cmd.switch(ctx.layout, before, ctx.deploy_id),
                stage=REVERT,
                shown=f"switch {ctx.layout.webroot} back -> {before}",
            )
        else:
            await ctx.remote(
                target,
                cmd.remove_webroot_link(ctx.layout),
                stage=REVERT,
                shown=f"remove {ctx.layout.webroot} (no previous release)",
            )
        live[target.key] = ctx.facts[target.key].live_release(ctx.layout)
        if target.key in ctx.switched:
            ctx.switched.remove(target.key)
        ctx.recorder.host(target.key, status=HostStatus.REVERTED)

    try:
        with ctx.recorder.stage(REVERT, len(hosts)):
            await ctx.each_host(REVERT, one, hosts)
            if ctx.env.post_release_on_revert:
                for target in hosts:
                    old = live.get(target.key)
                    if old:
                        await tasks.remote_task(
                            ctx, "post_release", [target], cwd=ctx.layout.release(old)
                        )
    finally:
        await ctx.store.set_live(live)
