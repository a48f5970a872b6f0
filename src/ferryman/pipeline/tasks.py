"""Hooks: bash scripts with strict mode and the deploy's variables, always under a timeout.

``pre_deploy`` and ``post_deploy`` run on the deploy host; ``pre_release``, ``post_release``
and ``restart`` (an emergency rollback's) run on every target. A cancel stops a running hook
at once — its sandbox on the deploy host, everything it started on a target — unless the deploy
is already undoing or committed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from ferryman import sandbox
from ferryman.clock import utcnow
from ferryman.commands import remote as cmd
from ferryman.domain.variables import task_script
from ferryman.errors import Cancelled, RemoteError, StageTimeout, TaskFailed
from ferryman.pipeline import stamp
from ferryman.pipeline.context import Context, sleep
from ferryman.pipeline.stopping import stop_commands
from ferryman.remote.executor import Target

RESTART = "restart"


async def local_task(ctx: Context, name: str, cwd: Path) -> None:
    """A deploy-host hook. ``post_deploy`` (the build) ends with the version stamp
    (``stamp.py``): the tree is built and the release named by then, push or pull."""
    script = getattr(ctx.env.tasks, name)
    await local_script(ctx, name, script, ctx.variables(), cwd, "task")
    if name == "post_deploy":
        await stamp.run(ctx)


async def local_script(
    ctx: Context,
    stage: str,
    script: str,
    variables: dict[str, str],
    cwd: Path,
    what: str = "task",
    host: str = "",
) -> None:
    """Run ``script`` on the deploy host (a hook, or a gray release's ``lb_out``/``lb_in``
    for ``host``), logged under ``stage``, under the task timeout, in the deploy's sandbox:
    the workspace is all it may write, and the variables (secrets too) travel in the script
    file, never on a command line. A cancel kills a hook's sandbox at once; a load balancer
    script (half of one is worse than waiting) is let finish."""
    if not script.strip():
        return
    full = task_script(script, variables)
    started, wall = time.monotonic(), utcnow()

    def on_line(stream: str, line: str) -> None:
        ctx.recorder.log(line, stage=stage, stream=stream, host=host)

    if not sandbox.enabled(ctx.settings):
        ctx.recorder.log(
            "the build sandbox is off (FERRYMAN_SANDBOX=off): running unconfined", stage=stage
        )
    try:
        running = sandbox.run(
            ctx.settings,
            deploy_id=ctx.deploy_id,
            workspace=ctx.workspace,
            script=full,
            cwd=cwd,
            network=ctx.env.sandbox.network,
            timeout=ctx.env.task_timeout,
            on_line=on_line,
            what=f"{what} {stage}",
            stage=stage,
        )
        result = await (ctx.cancellable(running) if what == "task" else running)
    except Cancelled as exc:
        ctx.recorder.step(
            host="",
            stage=stage,
            command=script,
            exit_status=None,
            output=f"stopped: {exc.message}",
            started=started,
            wall_start=wall,
        )
        raise
    except (TaskFailed, StageTimeout) as exc:
        ctx.recorder.step(
            host="",
            stage=stage,
            command=script,
            exit_status=None,
            output=exc.message,
            started=started,
            wall_start=wall,
        )
        if isinstance(exc, TaskFailed):  # it already names the hook; add the host
            exc.details.setdefault("host", host)
            raise
        raise StageTimeout(
            f"{stage} timed out after {ctx.env.task_timeout:g}s on the deploy host"
            + (f" (for host {host})" if host else ""),
            stage=stage,
            host=host,
        ) from None
    ctx.recorder.step(
        host="",
        stage=stage,
        command=script,
        exit_status=result.exit_status,
        output=(result.stdout + "\n" + result.stderr)[-4000:],
        started=started,
        wall_start=wall,
    )
    sandbox.check_workspace(ctx.workspace, ctx.tree, stage)
    if result.exit_status != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()
        raise TaskFailed(
            f"{what} {stage} failed on the deploy host (exit {result.exit_status})"
            + (f" for {host}" if host else "")
            + (f": {tail[-1][:300]}" if tail else ""),
            stage=stage,
            host=host,
            command=script,
            exit_status=result.exit_status,
            stderr_tail="\n".join(tail[-20:]),
        )


async def run_hook(
    ctx: Context, name: str, target: Target, cwd: str, script: str | None = None
) -> None:
    """One target hook on one host (nothing when the hook is empty): the task ``name``, or
    ``script`` logged under that name.

    The script with the deploy's variables (secrets too) travels on stdin into a 0600 file
    the host removes at once (``commands.remote.run_task``): never on a command line, where
    anyone on the host could read it with ``ps``. A cancel stops it on the host at once."""
    if script is None:
        script = getattr(ctx.env.tasks, name)
    if not script.strip():
        return
    full = task_script(script, ctx.variables(target.key), cwd=cwd, where="target")
    timeout = ctx.env.task_timeout
    try:
        await ctx.cancellable(
            ctx.remote(
                target,
                cmd.run_task(),
                stage=name,
                timeout=timeout,
                stdin=cmd.task_input(full),
                shown=script,
            ),
            stop=lambda: stop_commands(ctx, target, name),
        )
    except RemoteError as exc:  # name the hook, not the runner that read it from stdin
        exc.command = script
        exc.details["command"] = script
        raise
    except StageTimeout:
        raise StageTimeout(
            f"{name} timed out after {timeout:g}s on host {target.key}",
            stage=name,
            host=target.key,
            command=script,
        ) from None


async def remote_task(
    ctx: Context, name: str, targets: list[Target], cwd: str, delay: float = 0
) -> None:
    """Run a target hook on ``targets``: in parallel, or one by one with ``delay`` between."""
    script = getattr(ctx.env.tasks, name)
    if not script.strip():
        return

    async def one(target: Target) -> None:
        await run_hook(ctx, name, target, cwd)

    if delay <= 0:
        await ctx.each_host(name, one, targets)
        return
    for index, target in enumerate(targets):
        if index:
            await sleep(delay)
        await ctx.each_host(name, one, [target])


async def restart(ctx: Context, hosts: Mapping[str, str]) -> None:
    """An emergency rollback's ``tasks.restart`` (``post_release``'s script when it says
    so): on every host of ``hosts`` ({host: the release it now serves}) at once, in that
    release, as one stage. Nothing when no restart task is configured."""
    script = ctx.env.tasks.restart_script
    if not script.strip() or not hosts:
        return

    async def one(target: Target) -> None:
        await run_hook(ctx, RESTART, target, ctx.layout.release(hosts[target.key]), script)

    chosen = [ctx.target(key) for key in hosts]
    with ctx.recorder.stage(RESTART, len(chosen)):
        await ctx.each_host(RESTART, one, chosen, limit=max(len(chosen), 1))
