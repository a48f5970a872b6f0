"""cleanup: prune each host to ``keep_releases`` (never the live or previous good release,
unfinished ones first), and on failure remove the partial release dirs of this deploy."""

from __future__ import annotations

from ferryman.commands import remote as cmd
from ferryman.domain.release import choose_prunable, is_release_name
from ferryman.pipeline.context import Context
from ferryman.remote.executor import Target

STAGE = "cleanup"


async def prune(ctx: Context) -> None:
    complete = await ctx.store.complete_releases()
    order = await ctx.store.release_order()  # ours, by age: templated names too
    removed: dict[str, list[str]] = {}

    async def one(target: Target) -> None:
        facts = ctx.facts[target.key]
        on_host = [n for n in facts.releases if is_release_name(n) or n in order]
        doomed = choose_prunable(
            [*on_host, ctx.release],
            ctx.env.keep_releases,
            live=ctx.release,
            previous_good=facts.live_release(ctx.layout),
            complete=complete.get(target.key, set()) | {ctx.release},
            order=order,
        )
        if doomed:
            await ctx.remote(
                target,
                cmd.remove_releases(ctx.layout, doomed),
                stage=STAGE,
                shown="remove " + " ".join(doomed),
            )
            removed[target.key] = doomed
            ctx.recorder.log(
                f"pruned {len(doomed)}: {' '.join(doomed)}", host=target.key, stage=STAGE
            )

    try:
        await ctx.each_host(STAGE, one)
    finally:
        await ctx.store.mark_removed(removed)


async def remove_partial(ctx: Context) -> None:
    """After a failure before the switch: every host keeps its old release, minus our dir
    (and minus the early hard-linked copy, where one was made and not used)."""
    hosts = [t for t in ctx.targets if t.key in ctx.created or t.key in ctx.prelinked]
    if not hosts:
        return
    done: list[str] = []

    async def one(target: Target) -> None:
        if target.key in ctx.prelinked:
            await ctx.remote(
                target,
                cmd.remove_staging(ctx.layout, ctx.deploy_id),
                stage="remove_partial",
                shown="remove the early linked copy",
            )
        if target.key in ctx.created and ctx.release:
            await ctx.remote(
                target,
                cmd.remove_releases(ctx.layout, [ctx.release]),
                stage="remove_partial",
                shown=f"remove {ctx.release}",
            )
            done.append(target.key)

    try:
        with ctx.recorder.stage("remove_partial", len(hosts)):
            await ctx.each_host("remove_partial", one, hosts)
    finally:
        await ctx.store.mark_removed({host: [ctx.release] for host in done})
