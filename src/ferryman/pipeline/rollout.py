"""A gray release: after the release is on every host (no traffic impact), the hosts are
switched batch by batch — the canary first. Per batch: ``lb_out`` (deploy host) →
``pre_release`` → switch → ``post_release`` → health checks → ``lb_in`` for the healthy ones.

A host that fails any step is put back on its old release and back into the load balancer; past
``max_failed`` (or when the canary fails) the rollout aborts: with ``on_failure: rollback`` every
host switched in it goes back (``lb_out``, switch back, health checks on the old release,
``lb_in``), with ``halt`` it stops where it is. The release is then marked bad. After the canary
the rollout pauses as configured; a manual pause lets go of the job (``paused``), so it survives
any worker, and whoever continues it resumes it on any worker from the state kept after each
batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from ferryman.config.project import Strategy
from ferryman.domain import rollout as rules
from ferryman.domain.statuses import HostStatus, RolloutState
from ferryman.errors import Cancelled, FerrymanError, RolloutFailed
from ferryman.pipeline import analysis, health, release, served, tasks
from ferryman.pipeline.context import Context
from ferryman.remote.executor import Target, fan_out


class _Abort(Exception):
    def __init__(self, how: str, reason: str, host: str = "", stage: str = "", what: str = ""):
        super().__init__(reason)
        self.how, self.reason, self.host, self.stage, self.what = how, reason, host, stage, what


Action = Callable[[Target], Awaitable[None]]


async def _each(
    ctx: Context, stage: str, targets: list[Target], action: Action
) -> dict[str, BaseException]:
    """Run ``action`` per host (bounded), recording per-host progress; failures are returned,
    not raised (a gray release counts them). A cancel is raised."""

    async def timed(target: Target) -> None:
        start = time.monotonic()
        try:
            await action(target)
        except BaseException:
            ctx.recorder.stage_host(stage, target.key, False, time.monotonic() - start)
            raise
        ctx.recorder.stage_host(stage, target.key, True, time.monotonic() - start)

    failures = await fan_out(targets, timed, ctx.env.parallel)
    for exc in failures.values():
        if isinstance(exc, Cancelled):
            raise exc
    return failures


def _why(exc: BaseException) -> str:
    return exc.message if isinstance(exc, FerrymanError) else f"{type(exc).__name__}: {exc}"


async def _lb(ctx: Context, which: str, target: Target) -> None:
    strategy = ctx.env.strategy
    script = getattr(strategy, which) if strategy is not None else ""
    await tasks.local_script(
        ctx, which, script, ctx.variables(target.key), ctx.workspace, "load balancer", target.key
    )


async def _step(
    ctx: Context, state: rules.Rollout, stage: str, hosts: list[Target], action: Action
) -> list[Target]:
    """One step of a batch on the hosts still in it; returns those that passed."""
    if not hosts:
        return []
    with ctx.recorder.stage(stage, len(hosts)):
        failures = await _each(ctx, stage, hosts, action)
    for key, exc in failures.items():
        state.failed[key] = ctx.recorder.mask(f"{stage}: {_why(exc)}")[:500]
        ctx.recorder.host(key, status=HostStatus.FAILED, error=state.failed[key])
    return [t for t in hosts if t.key not in failures]


def _balanced(ctx: Context) -> bool:
    """A load balancer is driven (``lb_in`` is set): who is out of it is worth recording."""
    return bool(ctx.env.strategy is not None and ctx.env.strategy.lb_in.strip())


async def _taking_out(ctx: Context, state: rules.Rollout, keys: list[str]) -> None:
    """Record ``keys`` as out of the load balancer *before* their ``lb_out`` runs: a worker
    lost from here on leaves the list behind, and the recovery puts them back in
    (``pipeline/recover.py``)."""
    if _balanced(ctx):
        state.out_of_lb = list(dict.fromkeys([*state.out_of_lb, *keys]))
        await ctx.store.save_rollout(state)


async def lb_in_again(ctx: Context, keys: list[str]) -> dict[str, str]:
    """``lb_in`` for hosts a lost run may have left out of the load balancer; what failed,
    per host."""
    if not keys or not _balanced(ctx):
        return {}
    targets = [ctx.target(k) for k in keys]
    failures = await _each(ctx, "lb_in", targets, lambda t: _lb(ctx, "lb_in", t))
    return {key: _why(exc) for key, exc in failures.items()}


async def _batch(
    ctx: Context, state: rules.Rollout, batch: list[Target], hold_out: bool = False
) -> None:
    new_dir = ctx.layout.release(ctx.release)
    held_before = list(state.out_of_lb)
    await _taking_out(ctx, state, [t.key for t in batch])
    hosts = await _step(ctx, state, "lb_out", batch, lambda t: _lb(ctx, "lb_out", t))
    hosts = await _step(
        ctx, state, "pre_release", hosts, lambda t: tasks.run_hook(ctx, "pre_release", t, new_dir)
    )
    ctx.checkpoint()
    if hosts:
        with ctx.recorder.stage(release.SWITCH, len(hosts)):
            try:
                await release.switch_all(ctx, {t.key: ctx.release for t in hosts})
            except FerrymanError as exc:
                for target in hosts:
                    if target.key not in ctx.switched:
                        state.failed[target.key] = ctx.recorder.mask(f"switch: {exc.message}")[:500]
        hosts = [t for t in hosts if t.key in ctx.switched]
    state.switched = [k for k in ctx.switched]
    await ctx.store.save_rollout(state)
    if ctx.env.post_release_delay > 0:
        passed = []
        for index, target in enumerate(hosts):
            if index:
                await asyncio.sleep(ctx.env.post_release_delay)
            passed += await _step(
                ctx,
                state,
                "post_release",
                [target],
                lambda t: tasks.run_hook(ctx, "post_release", t, new_dir),
            )
        hosts = passed
    else:
        hosts = await _step(
            ctx,
            state,
            "post_release",
            hosts,
            lambda t: tasks.run_hook(ctx, "post_release", t, new_dir),
        )

    async def healthy(target: Target) -> None:
        failed = await health.check_host(ctx, target)
        if failed is not None:
            what, why = failed
            raise RolloutFailed(f"{what}: {why}", host=target.key, stage=health.STAGE, command=what)

    if ctx.env.health_check:
        hosts = await _step(ctx, state, health.STAGE, hosts, healthy)
    if ctx.env.verify_served is not None:  # it serves the new release, not a cached old one
        hosts = await _step(ctx, state, served.STAGE, hosts, lambda t: served.prove(ctx, t))
    held: list[str] = []
    if hold_out:  # canary_lb: out_until_continue: lb_in when the rollout is continued
        held = [t.key for t in hosts]
        ctx.recorder.log(f"kept out of the load balancer until continue: {len(hosts)} host(s)")
    else:
        hosts = await _step(ctx, state, "lb_in", hosts, lambda t: _lb(ctx, "lb_in", t))
    state.healthy += [t.key for t in hosts if t.key not in state.healthy]
    # hosts that failed: back on their old release, and back into the load balancer
    broken = [t for t in batch if t.key in state.failed]
    back = [t.key for t in broken if t.key in ctx.switched]
    if back:
        await release.revert(ctx, back)
    for target in broken:  # failed (and put back): what a retry of the failed hosts takes
        ctx.recorder.host(target.key, status=HostStatus.FAILED, error=state.failed[target.key])
    for target in broken:
        try:
            await _lb(ctx, "lb_in", target)
        except FerrymanError as exc:
            ctx.recorder.log(f"lb_in after the failure: {exc.message}", host=target.key)
    # every host of the batch had its lb_in, but the canary held out until continue
    state.out_of_lb = held_before + [k for k in held if k not in held_before]
    state.switched = list(ctx.switched)


async def _wait(ctx: Context, state: rules.Rollout, seconds: float, why: str) -> None:
    """Wait ``seconds`` (a timed pause, or between batches); a person may continue early or
    abort."""
    ctx.recorder.log(f"waiting {seconds:.0f}s {why}")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(min(1.0, max(deadline - time.monotonic(), 0)))
        ctx.checkpoint()
        asked = await ctx.store.take_rollout_request()
        if asked == "continue":
            ctx.recorder.log("continued early")
            return
        if asked in ("abort", "rollback"):
            raise _Abort(asked, f"{asked} asked while waiting")


async def _back_in(ctx: Context, state: rules.Rollout) -> None:
    """``lb_in`` for the canary hosts held out of the load balancer (``canary_lb``); a host
    whose ``lb_in`` fails is logged and still counted as back (nothing else would retry it)."""
    held, state.out_of_lb = [ctx.target(k) for k in state.out_of_lb], []
    if held:
        ctx.recorder.log(f"back into the load balancer: {', '.join(t.key for t in held)}")
        for key, exc in (await _each(ctx, "lb_in", held, lambda t: _lb(ctx, "lb_in", t))).items():
            ctx.recorder.log(f"lb_in: {_why(exc)}", host=key)
        await ctx.store.save_rollout(state)


async def _asked(ctx: Context) -> None:
    asked = await ctx.store.take_rollout_request()
    if asked in ("abort", "rollback"):
        raise _Abort(asked, f"{asked} asked")


def _first_failure(state: rules.Rollout, batch: list[str]) -> tuple[str, str]:
    for key in batch:
        if key in state.failed:
            return key, state.failed[key]
    key = next(iter(state.failed))
    return key, state.failed[key]


async def run(
    ctx: Context, state: rules.Rollout, asked: str = "", pause: bool = True
) -> RolloutState:
    """Run the batches from ``state.next_batch``; ``paused`` or ``done``. A rollback runs
    the same flow with ``pause=False``."""
    strategy = ctx.env.strategy or Strategy()
    total = sum(len(b) for b in state.batches)
    budget = rules.amount(strategy.max_failed, total, "strategy/max_failed")
    canary = bool(strategy.canary) and len(state.batches) > 1
    for target in ctx.targets:
        state.previous.setdefault(target.key, ctx.facts[target.key].link)
    state.state, state.paused_since, state.pause_reason = RolloutState.RUNNING, None, ""
    try:
        if asked in ("abort", "rollback"):
            raise _Abort(asked, f"{asked} asked while paused")
        while state.next_batch < len(state.batches):
            index = state.next_batch
            keys = state.batches[index]
            if index > 0:
                await _back_in(ctx, state)  # continued: the held canary serves again
            if index > 0 and strategy.between_batches and not asked:
                await _wait(ctx, state, strategy.between_batches, "between batches")
            asked = ""
            await _asked(ctx)
            ctx.checkpoint()
            name = f"batch {index + 1}/{len(state.batches)}" + (
                " (canary)" if canary and index == 0 else ""
            )
            with ctx.recorder.stage(name, len(keys)):
                ctx.recorder.log(f"{name}: {', '.join(keys)}")
                hold = canary and index == 0 and strategy.canary_lb == "out_until_continue"
                await _batch(ctx, state, [ctx.target(k) for k in keys], hold)
            state.next_batch += 1
            await ctx.store.save_rollout(state)
            batch_failed = [k for k in keys if k in state.failed]
            if batch_failed and (canary and index == 0):
                host, what = _first_failure(state, keys)
                raise _Abort(strategy.on_failure, f"the canary failed: {host}: {what}", host)
            if len(state.failed) > budget:
                host, what = _first_failure(state, keys)
                raise _Abort(
                    strategy.on_failure,
                    f"{len(state.failed)} host(s) failed, {budget} allowed: {host}: {what}",
                    host,
                )
            promoted = False
            if pause and canary and index == 0 and strategy.analysis is not None:
                judged = await analysis.run(ctx, state, keys)  # metric canary analysis
                if judged.action == analysis.ABORT:
                    raise _Abort(judged.how, judged.reason, judged.host)
                if judged.action == analysis.PAUSE:
                    state.state, state.pause_reason = RolloutState.PAUSED, judged.reason
                    state.paused_since = datetime.now(UTC).isoformat()
                    return RolloutState.PAUSED
                promoted = judged.action == analysis.PROMOTED
            if pause and canary and index == 0 and state.next_batch < len(state.batches):
                wait = 0.0 if promoted else strategy.pause_seconds
                if wait is None:
                    state.state = RolloutState.PAUSED
                    state.paused_since = datetime.now(UTC).isoformat()
                    state.pause_reason = "after the canary: continue or abort"
                    ctx.recorder.log("paused after the canary: waiting for continue or abort")
                    return RolloutState.PAUSED
                if wait:
                    await _wait(ctx, state, wait, "after the canary")
        await _back_in(ctx, state)
        state.state = RolloutState.DONE
        await ctx.store.save_rollout(state)
        return RolloutState.DONE
    except Cancelled:
        if state.out_of_lb:  # a held canary goes back on its old release, then in
            ctx.undoing = True  # as the runner's undo: no cancel stops this
            await release.revert(ctx, [k for k in state.out_of_lb if k in ctx.switched])
            await _back_in(ctx, state)
        raise
    except _Abort as abort:
        # a person's "abort" applies on_failure; "rollback" always puts hosts back
        how = strategy.on_failure if abort.how == "abort" else abort.how
        await abort_rollout(ctx, state, how, abort.reason, abort.host)
        raise AssertionError("unreachable") from None


async def abort_rollout(
    ctx: Context, state: rules.Rollout, how: str, reason: str, host: str = ""
) -> None:
    """Stop the rollout: ``rollback`` puts every switched host back (lb_out, switch back,
    health checks on the old release, lb_in), ``halt`` leaves everything as it is. The release
    is marked bad; raises ``RolloutFailed`` naming the host and what failed."""
    ctx.undoing = True
    ctx.recorder.log(f"rollout aborted ({how}): {reason}")
    back = [ctx.target(k) for k in ctx.switched]
    if how == "rollback" and back:
        await _taking_out(ctx, state, [t.key for t in back])
        with ctx.recorder.stage("abort", len(back)):
            for target in back:
                try:
                    await _lb(ctx, "lb_out", target)
                except FerrymanError as exc:
                    ctx.recorder.log(f"lb_out: {exc.message}", host=target.key)
            await release.revert(ctx, [t.key for t in back])
            for target in back:
                if ctx.env.health_check:
                    old = await health.check_host(ctx, target)
                    if old is not None:
                        ctx.recorder.log(
                            f"the old release is not healthy either: {old[0]}: {old[1]}",
                            host=target.key,
                        )
                try:
                    await _lb(ctx, "lb_in", target)
                except FerrymanError as exc:
                    ctx.recorder.log(f"lb_in: {exc.message}", host=target.key)
        state.state, state.out_of_lb = RolloutState.ABORTED, []
    else:
        state.state = RolloutState.HALTED if how == "halt" else RolloutState.ABORTED
        ctx.switched.clear()  # halt: nothing is put back
        await _back_in(ctx, state)  # but a held canary serves again
    state.switched = list(ctx.switched)
    await ctx.store.save_rollout(state)
    await ctx.store.mark_bad(ctx.release)
    detail = state.failed.get(host, "")
    stage, _, what = detail.partition(": ")
    raise RolloutFailed(
        f"rollout aborted: {reason}",
        host=host,
        stage=stage,
        command=what if stage == health.STAGE else "",
        failed=state.failed,
        batch=state.next_batch,
        on_failure=how,
    )
