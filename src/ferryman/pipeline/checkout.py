"""checkout: resolve the ref to one exact revision, then write that tree into the workspace."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from ferryman import sandbox
from ferryman.domain.release import is_safe_name
from ferryman.errors import Conflict, VcsError
from ferryman.pipeline import builds, naming, parked_trees, prepare
from ferryman.pipeline.context import Context
from ferryman.process import LocalResult
from ferryman.vcs.base import Resolved, SandboxRun, Vcs
from ferryman.vcs.factory import open_repo

STAGE = "checkout"
REUSE = "reuse_build"
LIVE = "live_release"


def repo_for(ctx: Context) -> Vcs:
    def on_line(stream: str, line: str) -> None:
        ctx.recorder.log(line, stage=STAGE, stream=stream)

    return open_repo(ctx.settings, ctx.project, ctx.env, space=ctx.space, on_line=on_line)


def sandboxed(ctx: Context) -> SandboxRun | None:
    """Runs the checkout's git/svn in the deploy's sandbox (None: the sandbox is off)."""
    if not sandbox.enabled(ctx.settings):
        return None

    def on_line(stream: str, line: str) -> None:
        ctx.recorder.log(line, stage=STAGE, stream=stream)

    async def run(
        script: str,
        *,
        network: bool,
        readonly: tuple[Path, ...],
        files: Mapping[str, bytes],
    ) -> LocalResult:
        return await ctx.cancellable(  # a cancel stops a long clone too
            sandbox.run(
                ctx.settings,
                deploy_id=ctx.deploy_id,
                workspace=ctx.workspace,
                script=script,
                cwd=ctx.workspace,
                network=network,
                timeout=ctx.env.task_timeout,
                on_line=on_line,
                what="checkout",
                stage=STAGE,
                readonly=readonly,
                files=files,
            )
        )

    return run


async def run(ctx: Context) -> None:
    await prepare.beside(ctx, _check_out(ctx))


async def _check_out(ctx: Context) -> None:
    repo = repo_for(ctx)
    await repo.update()
    try:
        resolved = await repo.resolve(ctx.ref)
    except VcsError:
        if not ctx.pinned_commit:
            raise
        resolved = Resolved(ref=ctx.ref, commit="")  # the ref is gone; the commit may not be
    if ctx.pinned_commit and resolved.commit != ctx.pinned_commit:
        ctx.recorder.log(
            f"{ctx.ref} has moved to {resolved.commit}; deploying the approved {ctx.pinned_commit}",
            stage=STAGE,
        )
        resolved = await repo.pin(resolved, ctx.pinned_commit)
    await parked_trees.check_out(ctx, repo, resolved, sandboxed(ctx))
    sandbox.check_workspace(ctx.workspace, ctx.tree, STAGE)
    await adopt(ctx, resolved)


async def reuse_build(ctx: Context, tree: Path, resolved: Resolved) -> None:
    """A retry: the failed deploy's built tree, exactly as it was shipped (no checkout, no
    build)."""
    await adopt(ctx, resolved)
    ctx.recorder.log(f"reusing the build of deploy #{ctx.retry_of}", stage=REUSE)
    await asyncio.to_thread(builds.reuse, tree, ctx.tree)


async def adopt_live(ctx: Context) -> None:
    """A config-only deploy: the release every host runs now is shipped again (a hard-linked
    copy) with the current config files. Refuses if a host moved off it since the request."""
    base = ctx.target_release
    moved = [
        f"{key} is on {facts.live_release(ctx.layout) or 'no release'}"
        for key, facts in ctx.facts.items()
        if facts.live_release(ctx.layout) != base or not facts.releases.get(base)
    ]
    if moved:
        raise Conflict(
            f"a config-only deploy of {base} was asked for, but "
            + "; ".join(moved)
            + ": request it again"
        )
    ctx.recorder.log(f"config-only: shipping {base} again with the current config", stage=LIVE)
    await adopt(ctx, Resolved(ref=ctx.ref, commit=ctx.pinned_commit))


def _refuse_replacing_a_served_release(ctx: Context) -> None:
    """A retry ships the release the other hosts serve under its name, replacing a leftover
    dir of that name: never on a host whose webroot, as this deploy's probe saw it, points
    there already (its switch was made but its answer lost, so the records say otherwise) —
    that would delete the site it serves. Refused before any host changes."""
    serving = sorted(
        key for key, facts in ctx.facts.items() if facts.live_release(ctx.layout) == ctx.release
    )
    if serving:
        raise Conflict(
            f"{', '.join(serving)} already serve{'s' if len(serving) == 1 else ''} "
            f"{ctx.release}, which the records do not show (a switch whose answer was lost): "
            "nothing was changed; `ferryman releases --verify` shows what each host serves"
        )


async def adopt(ctx: Context, resolved: Resolved) -> None:
    """Take ``resolved`` as what this deploy ships: name the release (once the probe says
    which releases the hosts have), record both."""
    await prepare.probed(ctx)
    ctx.resolved = resolved
    same = str(ctx.options.get("release") or "")
    if same and is_safe_name(same):
        # a retry of the hosts a finished deploy missed: the release the others serve, so
        # the environment ends on one (a leftover dir of that name here is replaced)
        ctx.release = same
        _refuse_replacing_a_served_release(ctx)
    else:  # the environment's release_name template, or the default; never one taken
        ctx.release = await naming.name_release(ctx, resolved)
    ctx.recorder.log(f"{ctx.ref} is {resolved.commit}; release {ctx.release}", stage=STAGE)
    await ctx.store.set_resolved(resolved.commit, ctx.release)
