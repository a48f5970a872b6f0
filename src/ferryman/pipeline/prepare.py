"""prepare: an isolated workspace, one SSH connection per host, and a probe of every host.

Refuses before anything changes when a webroot is a real directory, a webroot parent is missing,
the releases dir is not writable or a tool is missing. (The lock is taken by the runner.)
"""

from __future__ import annotations

import shutil

from ferryman import sandbox
from ferryman.commands import remote as cmd
from ferryman.errors import RemoteError
from ferryman.pipeline.context import Context, HostFacts
from ferryman.remote.executor import Target

STAGE = "prepare"


def parse_probe(output: str) -> tuple[HostFacts, list[str]]:
    """The probe's lines → facts, plus the problems that forbid deploying to this host."""
    facts = HostFacts()
    problems: list[str] = []
    for line in output.splitlines():
        parts = line.split("\t")
        if parts[0] == "webroot":
            if parts[1] == "link":
                facts.link = parts[2] if len(parts) > 2 else ""
            elif parts[1] == "real":
                problems.append(
                    "webroot is a real directory (or file), not a symlink: refusing to replace it"
                )
        elif parts[0] == "parent" and parts[1] != "ok":
            problems.append("the webroot's parent directory does not exist")
        elif parts[0] == "releases" and parts[1] != "ok":
            problems.append("the releases directory cannot be created or written")
        elif parts[0] == "tool" and parts[2] != "ok":
            problems.append(f"{parts[1]} is not installed")
        elif parts[0] == "optional" and len(parts) > 2 and parts[2] == "ok":
            facts.tools.add(parts[1])
        elif parts[0] == "need" and len(parts) > 3 and parts[3] != "ok":
            problems.append(f"requires {parts[1]} {parts[2]}, which is missing")
        elif parts[0] == "release":
            facts.releases[parts[1]] = parts[2] if len(parts) > 2 else None
    return facts, problems


async def probe_hosts(
    ctx: Context, stage: str = STAGE, refuse: bool = True, only: list[str] | None = None
) -> None:
    """Probe every host into ``ctx.facts``; with ``refuse``, a host that cannot take a deploy
    fails the stage."""

    async def one(target: Target) -> None:
        result = await ctx.remote(
            target,
            cmd.probe(ctx.layout, ctx.env.requires.commands, ctx.env.requires.packages, only),
            stage=stage,
            quiet=True,
            shown="probe",
        )
        facts, problems = parse_probe(result.stdout)
        ctx.facts[target.key] = facts
        ctx.recorder.host(
            target.key,
            status="running",
            previous_release=facts.live_release(ctx.layout) or facts.link or "",
        )
        if problems and refuse:
            raise RemoteError("; ".join(problems), host=target.key, stage=stage)

    await ctx.each_host(stage, one)


async def run(ctx: Context, only: list[str] | None = None) -> None:
    if ctx.workspace.exists():
        shutil.rmtree(ctx.workspace)
    ctx.workspace.mkdir(parents=True)
    ctx.package_dir.mkdir(mode=0o700)
    sandbox.prepare_workspace(ctx.settings, ctx.workspace, ctx.deploy_id)
    ctx.recorder.log(f"workspace {ctx.workspace}", stage=STAGE)
    await probe_hosts(ctx, only=only)
