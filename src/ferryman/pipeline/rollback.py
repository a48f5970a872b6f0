"""rollback: one release for every chosen host — the one asked for, or the last good one
before what they serve — verified complete on every host against its manifest, then the
same atomic switch, then ``post_release``. Recorded as its own deploy. A host that cannot go
there is named and nothing is switched: a rollback never mixes releases."""

from __future__ import annotations

from ferryman.domain.release import rollback_target
from ferryman.errors import Conflict
from ferryman.pipeline import integrity, rollout, tasks
from ferryman.pipeline.context import Context
from ferryman.pipeline.release import SWITCH, switch_all

STAGE = "verify"


async def target_release(
    ctx: Context, facts_live: dict[str, str | None] | None = None
) -> str | None:
    """The one release this rollback goes to: ``to``, or the last good release before the
    newest one the chosen hosts serve (``domain.release.rollback_target``)."""
    if ctx.target_release:
        return ctx.target_release
    good = await ctx.store.good_releases()
    live: dict[str, str | None] = dict(await ctx.store.live_releases())
    for key, name in (facts_live or {}).items():
        live[key] = name or live.get(key)  # what a host really serves wins over the record
    bad = set() if ctx.options.get("force") else await ctx.store.bad_releases()
    order = await ctx.store.release_order()  # older/newer by the records, not by name
    return rollback_target(good, [t.key for t in ctx.targets], live, bad, order)


async def candidates(ctx: Context) -> list[str]:
    """The release a rollback goes to, from the records alone (what an emergency rollback
    then looks for on the hosts)."""
    found = await target_release(ctx)
    return [found] if found else []


async def choose_targets(ctx: Context) -> dict[str, str]:
    """{host: the release to switch to} — one release for every host — or ``Conflict``
    naming every host that cannot go there (not recorded as complete there by a successful
    deploy, missing, or not matching its manifest)."""
    facts_live = {k: f.live_release(ctx.layout) for k, f in ctx.facts.items()}
    name = await target_release(ctx, facts_live)
    if name is None:
        raise Conflict("cannot roll back: no earlier good release on these hosts")
    checked = ctx.options.get("migrations_target")
    if checked and name != checked:  # the request's migration check was for another release
        raise Conflict(
            f"cannot roll back to {name}: the request was checked for database migrations "
            f"against {checked}, and the hosts now call for {name}; ask for the rollback again",
            release=name,
        )
    good = {} if ctx.target_release else await ctx.store.good_releases()
    missing: dict[str, str] = {}
    for target in ctx.targets:
        if not ctx.facts[target.key].releases.get(name):
            missing[target.key] = "not on the host"
        elif not ctx.target_release and name not in good.get(target.key, set()):
            missing[target.key] = "no successful deploy completed it there"
    present = {t.key: name for t in ctx.targets if t.key not in missing}
    if present and not ctx.options.get("emergency"):  # the site is down: no hashing then
        missing.update(await integrity.damaged(ctx, present, STAGE))
    if missing:
        raise Conflict(
            f"cannot roll back to {name}: "
            + ", ".join(f"{host} ({why})" for host, why in sorted(missing.items())),
            release=name,
            hosts=missing,
        )
    return dict.fromkeys((t.key for t in ctx.targets), name)


async def run(ctx: Context) -> None:
    with ctx.recorder.stage(STAGE, len(ctx.targets)):
        chosen = await choose_targets(ctx)
        name = next(iter(chosen.values()))
        ctx.release = name
        await ctx.store.set_resolved("", name)
        ctx.recorder.log(f"rolling back to {name}", stage=STAGE)
    if ctx.options.get("emergency"):
        # the site is down: the link switch, every host at once, then the restart task
        # (``tasks.restart``, none by default) everywhere at once; no other hooks
        with ctx.recorder.stage(SWITCH, len(chosen)):
            await switch_all(ctx, chosen)
        # a restart that fails is reported; the hosts stay on the release they need
        ctx.switching = False
        await tasks.restart(ctx, chosen)
        return
    if ctx.rollout is not None:
        # a normal rollback of a gray-released environment: the same batch flow, no pause
        ctx.rollout.previous = {t.key: ctx.facts[t.key].link for t in ctx.targets}
        await rollout.run(ctx, ctx.rollout, pause=False)
        return
    with ctx.recorder.stage(SWITCH, len(chosen)):
        await switch_all(ctx, chosen)
    with ctx.recorder.stage("post_release", len(chosen)):
        await tasks.remote_task(
            ctx,
            "post_release",
            ctx.targets,
            cwd=ctx.layout.release(name),
            delay=ctx.env.post_release_delay,
        )
