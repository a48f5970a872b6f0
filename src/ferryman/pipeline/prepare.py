"""prepare: an isolated workspace, one SSH connection per host, and a probe of every host.

Refuses before anything changes when a webroot is a real directory, a webroot parent is missing,
the releases dir is not writable or a tool is missing. (The lock is taken by the runner.)
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Coroutine
from typing import Any, TypeVar

from ferryman import sandbox
from ferryman.commands import probe, relay
from ferryman.domain.local_paths import LOCAL
from ferryman.domain.statuses import HostStatus, StageStatus
from ferryman.errors import RemoteError
from ferryman.pipeline.context import Context, HostFacts
from ferryman.remote.executor import Target

STAGE = "prepare"
T = TypeVar("T")


def parse_probe(output: str) -> tuple[HostFacts, list[str]]:
    """The probe's answer → what the deploy keeps of it (facts), plus the problems that
    forbid deploying to this host. Raises ``ValueError`` for a cut or broken answer."""
    report = probe.parse(output)
    facts = HostFacts(
        link=report.link, releases=dict(report.releases), tools=report.optional_present
    )
    return facts, report.problems()


async def probe_hosts(
    ctx: Context,
    stage: str = STAGE,
    refuse: bool = True,
    only: list[str] | None = None,
    record: bool = True,
) -> None:
    """Probe every host into ``ctx.facts``; with ``refuse``, a host that cannot take a deploy
    fails the stage. With ``record``, each host's row starts ``running`` with what it serves
    as its ``previous_release`` — never from a recovery, which must read that as it was."""

    # under the deploy's lock: what earlier deploys' fan-out left on a host they could not
    # reach at their end (a key line, a directory) goes before this deploy makes its own
    sweep = (
        relay.sweep(ctx.env.transfer.authorized_keys, ctx.layout) if ctx.env.transfer.fanout else ""
    )

    async def one(target: Target) -> None:
        result = await ctx.remote(
            target,
            probe.probe(
                ctx.layout,
                ctx.env.requires.commands,
                ctx.env.requires.packages,
                only,
                first="" if target.key == LOCAL else sweep,
            ),
            stage=stage,
            quiet=True,
            full_output=True,  # a host keeping many releases answers more than a tail
            shown="probe",
        )
        try:
            facts, problems = parse_probe(result.stdout)
        except ValueError as exc:
            raise RemoteError(str(exc), host=target.key, stage=stage) from None
        ctx.facts[target.key] = facts
        if record:
            ctx.recorder.host(
                target.key,
                status=HostStatus.RUNNING,
                previous_release=facts.live_release(ctx.layout) or facts.link or "",
            )
        if problems and refuse:
            raise RemoteError("; ".join(problems), host=target.key, stage=stage)

    await ctx.each_host(stage, one)
    if record:
        # what each host serves now is in the database before any host is touched: a worker
        # killed after its switch, its batch of records unwritten, would leave the recovery
        # reading the new release as the one the host served before (and keeping it)
        await ctx.recorder.flush_all()


def _workspace(ctx: Context) -> None:
    if ctx.workspace.exists():
        shutil.rmtree(ctx.workspace)
    ctx.workspace.mkdir(parents=True)
    ctx.package_dir.mkdir(mode=0o700)
    sandbox.prepare_workspace(ctx.settings, ctx.workspace, ctx.deploy_id)
    ctx.recorder.log(f"workspace {ctx.workspace}", stage=STAGE)


async def run(ctx: Context, only: list[str] | None = None) -> None:
    _workspace(ctx)
    await probe_hosts(ctx, only=only)


def start(ctx: Context) -> None:
    """A deploy's prepare: the workspace now, the stage recorded; the probe of the hosts runs
    on in the background (``ctx.probing``) while the deploy host checks out, since nothing
    there depends on it. What needs the facts waits for it (``probed``): naming the release,
    the early links, a resumed rollout; a failed probe stops the checkout (``beside``)."""
    ctx.recorder.stage_start(STAGE, len(ctx.targets))
    try:
        _workspace(ctx)
    except BaseException:
        ctx.recorder.stage_end(STAGE, StageStatus.FAILED)
        raise

    async def probe() -> None:
        try:
            await probe_hosts(ctx)
        except BaseException:
            ctx.recorder.stage_end(STAGE, StageStatus.FAILED)
            raise
        ctx.recorder.stage_end(STAGE, StageStatus.SUCCESS)

    ctx.probing = asyncio.create_task(probe())


async def probed(ctx: Context) -> None:
    """Wait for the background probe, raising its failure (never cancelling it)."""
    probing = ctx.probing
    if probing is None:
        return
    await asyncio.wait({probing})
    probing.result()


async def probed_ok(ctx: Context) -> bool:
    """Wait for the background probe; whether it succeeded (its failure is the deploy's,
    raised where the deploy waits for it)."""
    probing = ctx.probing
    if probing is None:
        return True
    await asyncio.wait({probing})
    return not probing.cancelled() and probing.exception() is None


async def beside(ctx: Context, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` (the checkout) while the probe finishes: a probe that fails stops it at
    once, and its error is the deploy's."""
    probing = ctx.probing
    if probing is None or probing.done():
        try:
            await probed(ctx)
        except BaseException:
            work.close()
            raise
        return await work
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({task, probing}, return_when=asyncio.FIRST_COMPLETED)
        failed = probing.done() and (probing.cancelled() or probing.exception() is not None)
        if failed and not task.done():
            task.cancel()
            await asyncio.wait({task})
            probing.result()  # raises
        return await task
    finally:
        if not task.done():
            task.cancel()
