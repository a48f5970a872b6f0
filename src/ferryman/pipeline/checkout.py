"""checkout: resolve the ref to one exact revision, then write that tree into the workspace."""

from __future__ import annotations

import asyncio

from ferryman.domain.release import release_name
from ferryman.pipeline.context import Context
from ferryman.services import deploys
from ferryman.vcs.base import SshOptions, Vcs
from ferryman.vcs.git import GitRepo
from ferryman.vcs.svn import SvnRepo

STAGE = "checkout"


def repo_for(ctx: Context) -> Vcs:
    env = ctx.env
    ssh = SshOptions(
        key=env.repo_ssh_key or env.ssh_key or str(ctx.settings.ssh_key),
        known_hosts=env.repo_known_hosts or env.known_hosts or str(ctx.settings.known_hosts),
    )

    def on_line(stream: str, line: str) -> None:
        ctx.recorder.log(line, stage=STAGE)

    if ctx.project.vcs_kind == "svn":
        return SvnRepo(ctx.project.repo, ssh, on_line=on_line, timeout=env.task_timeout)
    mirror = ctx.settings.repo_cache / f"{ctx.project.project}.git"
    return GitRepo(ctx.project.repo, mirror, ssh, on_line=on_line, timeout=env.task_timeout)


async def run(ctx: Context) -> None:
    repo = repo_for(ctx)
    await repo.update()
    resolved = await repo.resolve(ctx.ref)
    ctx.resolved = resolved
    ctx.release = release_name(ctx.started, ctx.ref, resolved.commit)
    if any(ctx.release in facts.releases for facts in ctx.facts.values()):
        ctx.release = f"{ctx.release}-{ctx.deploy_id}"
    ctx.recorder.log(f"{ctx.ref} is {resolved.commit}; release {ctx.release}", stage=STAGE)
    await asyncio.to_thread(
        deploys.set_resolved,
        ctx.db,
        ctx.deploy_id,
        commit=resolved.commit,
        release_name=ctx.release,
    )
    await repo.export(resolved, ctx.tree)
