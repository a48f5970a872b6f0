"""Metric canary analysis: after the canary batch is switched and healthy, every
``interval`` for ``duration``, each metric's query is asked of Prometheus twice — with
``{HOSTS_RE}`` matching the canary's hosts, then the baseline's (the hosts still on the old
release) — and its ``compare`` judged. Each interval is recorded (``store.record_analysis``)
and written to the deploy's log as one line.

- A metric failing in more than ``failure_limit`` intervals fails the canary: the rollout
  applies ``on_failure`` at once (no need to wait out the duration).
- An interval that cannot be judged — Prometheus unreachable or refused by the outbound
  policy, an error, garbage, no data, a division by zero — fails safe: the rollout pauses
  with the reason, and a person continues (going on without the rest of the analysis) or
  aborts.
- A person's request during the analysis is taken between measurements: ``continue``
  promotes the canary (no pause after it), ``abort`` and ``rollback`` stop the rollout.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from ferryman.config.analysis import Analysis, Metric
from ferryman.domain import analysis as rules
from ferryman.domain.rollout import Rollout
from ferryman.domain.statuses import HostStatus
from ferryman.outbound import Outbound
from ferryman.pipeline import prometheus
from ferryman.pipeline.context import Context

STAGE = "analysis"
GO, PROMOTED, PAUSE, ABORT = "go", "promoted", "pause", "abort"


@dataclass(frozen=True)
class Outcome:
    """What the rollout does next: ``go`` on (passed), ``promoted`` (a person continued:
    no pause after the canary), ``pause`` (fail safe), ``abort`` with ``how``."""

    action: str
    reason: str = ""
    how: str = ""  # for abort: rollback | halt (on_failure), or what a person asked
    host: str = ""


def _names(ctx: Context, keys: list[str]) -> list[str]:
    """What ``{HOSTS_RE}`` matches for these hosts: each address and server name."""
    out: list[str] = []
    for key in keys:
        out.append(ctx.target(key).address)
        identity = ctx.host_ids.get(key)
        if identity is not None:
            out += identity.names
    return out


async def _wait(ctx: Context, seconds: float) -> str:
    """Wait until the next measurement; a person's request ends the wait early."""
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return ""
        await asyncio.sleep(min(1.0, left))
        ctx.checkpoint()
        asked = await ctx.store.take_rollout_request()
        if asked:
            return asked


@dataclass(frozen=True)
class _Asker:
    """Where the analysis asks: the outbound policy and one HTTP client for all its queries."""

    out: Outbound
    http: httpx.AsyncClient
    spec: Analysis

    async def ask(self, metric: Metric, regex: str) -> float:
        query = rules.fill(metric.query, regex)
        spec = self.spec
        return await prometheus.query(
            self.out, spec.prometheus, query, spec.query_timeout, self.http
        )


async def _measure_one(
    asker: _Asker, metric: Metric, interval: int, canary: str, baseline: str
) -> rules.Measurement:
    compare = metric.parsed
    canary_answer, baseline_answer = await asyncio.gather(
        asker.ask(metric, canary), asker.ask(metric, baseline), return_exceptions=True
    )
    if isinstance(canary_answer, rules.Unanswered):
        return rules.Measurement(
            interval, metric.name, None, None, rules.ERROR, f"canary: {canary_answer}"[:500]
        )
    if isinstance(canary_answer, BaseException):
        raise canary_answer
    baseline_value: float | None = None  # unless the compare needs it and it came
    if isinstance(baseline_answer, rules.Unanswered):
        if compare.uses_baseline:
            return rules.Measurement(
                interval,
                metric.name,
                canary_answer,
                None,
                rules.ERROR,
                f"baseline: {baseline_answer}"[:500],
            )
    elif isinstance(baseline_answer, BaseException):
        raise baseline_answer
    else:
        baseline_value = baseline_answer
    return rules.judge(interval, metric.name, compare, canary_answer, baseline_value)


async def run(ctx: Context, state: Rollout, canary: list[str]) -> Outcome:
    """Analyse the canary against the hosts not switched; see the module's docstring."""
    strategy = ctx.env.strategy
    spec = strategy.analysis if strategy is not None else None
    if strategy is None or spec is None:
        return Outcome(GO)
    baseline = [t.key for t in ctx.targets if t.key not in ctx.switched]
    if not baseline:
        ctx.recorder.log("analysis skipped: no host is left on the old release", stage=STAGE)
        return Outcome(GO)
    with ctx.recorder.stage(STAGE, len(canary)):
        started = time.monotonic()
        outcome = await _analyse(ctx, state, spec, strategy.on_failure, canary, baseline)
        if outcome.action != PAUSE:  # the canary's hosts: judged (or not yet, when paused)
            for key in canary:
                passed = outcome.action != ABORT
                ctx.recorder.stage_host(STAGE, key, passed, time.monotonic() - started)
    return outcome


async def _analyse(
    ctx: Context,
    state: Rollout,
    spec: Analysis,
    on_failure: str,
    canary: list[str],
    baseline: list[str],
) -> Outcome:
    """Every interval: wait (a person's request ends the wait), measure, record, judge."""
    out = Outbound(allow=ctx.settings.outbound_allow)
    async with prometheus.client(out, spec.query_timeout) as http:
        return await _intervals(ctx, state, _Asker(out, http, spec), on_failure, canary, baseline)


async def _intervals(
    ctx: Context,
    state: Rollout,
    asker: _Asker,
    on_failure: str,
    canary: list[str],
    baseline: list[str],
) -> Outcome:
    spec = asker.spec
    canary_re = rules.hosts_regex(_names(ctx, canary))
    baseline_re = rules.hosts_regex(_names(ctx, baseline))
    total = rules.intervals(spec.duration, spec.interval)
    measured: list[rules.Measurement] = []
    ctx.recorder.log(
        f"analysis: {', '.join(m.name for m in spec.metrics)} every {spec.interval:g}s, "
        f"{total} interval(s); canary {', '.join(canary)} against {len(baseline)} "
        f"host(s) on the old release; more than {spec.failure_limit} failed "
        "interval(s) of a metric fail the canary",
        stage=STAGE,
    )
    for interval in range(1, total + 1):
        asked = await _wait(ctx, spec.interval)
        if asked == "continue":
            ctx.recorder.log("analysis ended early: continued by a person", stage=STAGE)
            return Outcome(PROMOTED, "continued by a person")
        if asked in ("abort", "rollback"):
            return Outcome(ABORT, f"{asked} asked during the analysis", asked)
        rows = list(
            await asyncio.gather(
                *(_measure_one(asker, m, interval, canary_re, baseline_re) for m in spec.metrics)
            )
        )
        measured += rows
        await ctx.store.record_analysis(rows)
        ctx.recorder.log(
            f"analysis {interval}/{total}: " + "; ".join(r.shown() for r in rows),
            stage=STAGE,
        )
        broken = next((r for r in rows if r.verdict == rules.ERROR), None)
        if broken is not None:
            reason = (
                f"analysis interval {interval}/{total} could not be judged: "
                f"{broken.metric}: {broken.detail}; paused to be safe "
                "(continue to go on without the analysis, or abort)"
            )
            ctx.recorder.log(reason, stage=STAGE)
            return Outcome(PAUSE, reason)
        failed = rules.failed_metric(measured, spec.failure_limit)
        if failed is not None:
            count = rules.failures(measured)[failed]
            compare = next(m.compare for m in spec.metrics if m.name == failed)
            reason = (
                f"the canary failed its analysis: {failed} ({compare}) failed in "
                f"{count} of {interval} interval(s), {spec.failure_limit} allowed"
            )
            for key in canary:
                state.failed[key] = ctx.recorder.mask(f"{STAGE}: {reason}")[:500]
                ctx.recorder.host(key, status=HostStatus.FAILED, error=state.failed[key])
            return Outcome(ABORT, reason, on_failure, canary[0])
    ctx.recorder.log(f"analysis passed: {total} interval(s)", stage=STAGE)
    return Outcome(GO)
