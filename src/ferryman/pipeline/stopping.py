"""Stopping what a deploy still runs on its hosts: a cancelled hook, or everything a dead
worker left running (its switches, its hooks up to ``task_timeout``) before another worker
repairs the hosts. Every command a deploy runs on a host is recorded there by process group
(``commands.processes``), so this works from any connection and any worker."""

from __future__ import annotations

from ferryman.commands import processes
from ferryman.errors import RemoteError
from ferryman.pipeline.context import Context
from ferryman.remote.executor import Target, fan_out

STAGE = "stop"
TIMEOUT = processes.TERM_GRACE + processes.GONE_WAIT + 15


async def stop_commands(ctx: Context, target: Target, stage: str = STAGE) -> list[int]:
    """Stop every command of ``ctx``'s deploy on ``target`` (TERM, KILL after a grace) and
    wait until they are gone; returns the process groups stopped. ``RemoteError`` when one
    outlived the KILL (or the host cannot be reached)."""
    result = await ctx.remote(
        target,
        processes.stop(ctx.layout, ctx.deploy_id),
        stage=stage,
        timeout=TIMEOUT,
        check=False,
        quiet=True,
        track=False,  # never among what it stops
        shown=f"stop the commands of deploy #{ctx.deploy_id}",
    )
    done, alive = processes.stopped(result.stdout)
    if done:
        ctx.recorder.log(
            f"stopped {len(done)} running command(s) of deploy #{ctx.deploy_id}",
            host=target.key,
            stage=stage,
        )
    if alive or result.exit_status != 0:
        raise RemoteError(
            "running commands outlived SIGKILL"
            + (f" (process groups {', '.join(map(str, alive))})" if alive else ""),
            host=target.key,
            stage=stage,
            exit_status=result.exit_status,
            stderr_tail=result.stderr,
        )
    return done


async def stop_deploy_commands(
    ctx: Context, targets: list[Target] | None = None, stage: str = STAGE
) -> dict[str, str]:
    """Stop what ``ctx``'s deploy still runs on every host of ``targets`` (default: all of
    the deploy's), in parallel. Returns ``{host: why}`` for hosts where that could not be
    done (unreachable, or a command that survived SIGKILL); each is also logged. It never
    raises for a host: the caller repairs what it can reach."""
    chosen = ctx.targets if targets is None else targets

    async def one(target: Target) -> None:
        await stop_commands(ctx, target, stage)

    failures = await fan_out(chosen, one, ctx.env.parallel)
    problems = {host: ctx.host_error(exc) for host, exc in failures.items()}
    for host, why in problems.items():
        ctx.recorder.log(f"could not stop the deploy's running commands: {why}", host=host)
    return problems
