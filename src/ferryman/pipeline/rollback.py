"""rollback: verify the target release is complete on every host, then the same atomic switch,
then ``post_release``. Recorded as its own deploy."""

from __future__ import annotations

import asyncio

from ferryman.domain.release import previous_release
from ferryman.errors import Conflict
from ferryman.pipeline import rollout, tasks
from ferryman.pipeline.context import Context
from ferryman.pipeline.release import SWITCH, switch_all
from ferryman.services import deploy_records, deploy_views, rollouts

STAGE = "verify"


def candidates(ctx: Context) -> list[str]:
    """The releases a rollback can go to, from the records alone (what an emergency rollback
    then checks on the hosts): ``to``, or each host's previous good release."""
    if ctx.target_release:
        return [ctx.target_release]
    complete = deploy_views.complete_releases(ctx.db, ctx.project_id, ctx.env_name)
    live = deploy_views.live_releases(ctx.db, ctx.project_id, ctx.env_name)
    bad = (
        set()
        if ctx.options.get("force")
        else rollouts.bad_releases(ctx.db, ctx.project_id, ctx.env_name)
    )
    names = set()
    for target in ctx.targets:
        current = live.get(target.key)
        found = previous_release(sorted(complete.get(target.key, set()) - bad), current)
        if found:
            names.add(found)
    return sorted(names)


async def choose_targets(ctx: Context) -> dict[str, str]:
    """{host: release to switch to}, or ``Conflict`` naming every host that cannot go there."""
    wanted: dict[str, str | None] = {}
    if ctx.target_release:
        wanted = dict.fromkeys((t.key for t in ctx.targets), ctx.target_release)
    else:
        complete = await asyncio.to_thread(
            deploy_views.complete_releases, ctx.db, ctx.project_id, ctx.env_name
        )
        live = await asyncio.to_thread(
            deploy_views.live_releases, ctx.db, ctx.project_id, ctx.env_name
        )
        bad = set()
        if not ctx.options.get("force"):
            bad = await asyncio.to_thread(
                rollouts.bad_releases, ctx.db, ctx.project_id, ctx.env_name
            )
        for target in ctx.targets:
            present = {n for n, sha in ctx.facts[target.key].releases.items() if sha}
            current = live.get(target.key) or ctx.facts[target.key].live_release(ctx.layout)
            history = (complete.get(target.key, set()) & present) - (bad - {current})
            wanted[target.key] = previous_release(sorted(history), current)
    missing = []
    for target in ctx.targets:
        name = wanted[target.key]
        if name is None or not ctx.facts[target.key].releases.get(name):
            missing.append(f"{target.key} ({name or 'no earlier release'})")
    if missing:
        what = ctx.target_release or "the previous release"
        raise Conflict(f"cannot roll back to {what}: not complete on " + ", ".join(missing))
    return {k: v for k, v in wanted.items() if v}


async def run(ctx: Context) -> None:
    with ctx.recorder.stage(STAGE, len(ctx.targets)):
        chosen = await choose_targets(ctx)
        names = sorted(set(chosen.values()))
        ctx.release = names[0] if len(names) == 1 else ""
        await asyncio.to_thread(
            deploy_records.set_resolved,
            ctx.db,
            ctx.deploy_id,
            commit="",
            release_name=", ".join(names),
        )
        ctx.recorder.log("rolling back to " + ", ".join(names), stage=STAGE)
    if ctx.options.get("emergency"):
        # the site is down: the link switch only, every host at once, no hooks
        with ctx.recorder.stage(SWITCH, len(chosen)):
            await switch_all(ctx, chosen)
        return
    if ctx.rollout is not None and len(names) == 1:
        # a normal rollback of a gray-released environment: the same batch flow, no pause
        ctx.rollout.previous = {t.key: ctx.facts[t.key].link for t in ctx.targets}
        await rollout.run(ctx, ctx.rollout, pause=False)
        return
    with ctx.recorder.stage(SWITCH, len(chosen)):
        await switch_all(ctx, chosen)
    with ctx.recorder.stage("post_release", len(chosen)):
        for name in names:
            hosts = [ctx.target(k) for k, v in chosen.items() if v == name]
            await tasks.remote_task(
                ctx,
                "post_release",
                hosts,
                cwd=ctx.layout.release(name),
                delay=ctx.env.post_release_delay,
            )
