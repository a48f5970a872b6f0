"""``migrations:``: once a deploy or rollback has switched, list the database's migrations and
record them with the release (``store.record_migrations``), so that a later rollback knows
which irreversible migrations it would cross.

The command runs like the other tasks: on a target (the first host that serves the release,
in the release dir, as the deploy user) or on the deploy host (in the deploy's sandbox). Its
output is cut at ``MAX_BYTES`` on the host itself and parsed strictly
(``commands/migrations.py``). A command that fails is recorded as a failed listing: nothing
is then known, and the next rollback across it must be forced — the deploy itself stands.
"""

from __future__ import annotations

from ferryman import sandbox
from ferryman.commands import migrations as fmt
from ferryman.commands import remote as cmd
from ferryman.config.migrations import Migrations
from ferryman.domain.variables import task_script
from ferryman.errors import Cancelled, FerrymanError, OwnershipLost
from ferryman.pipeline.context import Context

STAGE = "migrations"


async def _on_target(ctx: Context, spec: Migrations, host: str) -> tuple[int, str, str]:
    target = ctx.target(host)
    script = task_script(
        fmt.bounded_script(spec.command),
        ctx.variables(target.key),
        cwd=ctx.layout.release(ctx.release),
    )
    result = await ctx.remote(
        target,
        cmd.run_task(),
        stage=STAGE,
        timeout=spec.timeout,
        stdin=cmd.task_input(script),
        check=False,
        quiet=True,
        full_output=True,
        shown=spec.command,
    )
    return result.exit_status or 0, result.stdout, result.stderr


async def _on_deploy_host(ctx: Context, spec: Migrations) -> tuple[int, str, str]:
    lines: list[str] = []
    size = 0

    def on_line(stream: str, line: str) -> None:
        nonlocal size
        if stream == "stdout" and size <= fmt.MAX_BYTES:
            lines.append(line)
            size += len(line) + 1

    cwd = ctx.tree if ctx.tree.is_dir() else ctx.workspace
    result = await sandbox.run(
        ctx.settings,
        deploy_id=ctx.deploy_id,
        workspace=ctx.workspace,
        script=task_script(fmt.bounded_script(spec.command), ctx.variables()),
        cwd=cwd,
        network=ctx.env.sandbox.network,
        timeout=spec.timeout,
        on_line=on_line,
        what=f"task {STAGE}",
        stage=STAGE,
    )
    # the repository's code ran in the sandbox with the tree as its cwd: the tree kept for a
    # retry or the next checkout must still be the tree, not a link it put in its place
    sandbox.check_workspace(ctx.workspace, ctx.tree, STAGE)
    return result.exit_status, "\n".join(lines), result.stderr


async def record(ctx: Context, hosts: list[str] | None = None) -> None:
    """List the migrations now that ``ctx.release`` is live on ``hosts`` (default: the
    switched ones) and record them; nothing without a ``migrations:`` command. Never fails
    the deploy: a failed listing is recorded as one."""
    spec = ctx.env.migrations
    live = [k for k in (hosts if hosts is not None else ctx.switched)]
    if spec is None or not ctx.release or (spec.run_on == "target" and not live):
        return
    error = ""
    listing: fmt.Listing | None = None
    try:
        if spec.run_on == "target":
            status, out, err = await _on_target(ctx, spec, live[0])
        else:
            status, out, err = await _on_deploy_host(ctx, spec)
        if status != 0:
            tail = [line for line in err.strip().splitlines() if line.strip()]
            error = f"exit {status}" + (f": {tail[-1]}" if tail else "")
        else:
            text, cut = fmt.cut(out)
            listing = fmt.parse(text, truncated=cut)
    except (Cancelled, OwnershipLost):
        raise
    except FerrymanError as exc:
        error = exc.message
    if listing is not None:
        irreversible = [m.version for m in listing.applied if not m.reversible]
        ctx.recorder.log(
            f"{len(listing.applied)} migration(s) listed, {len(irreversible)} irreversible"
            + (
                f"; {listing.rejected} line(s) that are not migrations ignored"
                if listing.rejected
                else ""
            )
            + ("; the output was cut at its bound" if listing.truncated else ""),
            stage=STAGE,
        )
        for example in listing.examples[:3]:
            ctx.recorder.log(f"not a migration: {example!r}", stage=STAGE)
    else:
        error = ctx.recorder.mask(fmt.printable(error, 300))
        ctx.recorder.log(
            f"listing the migrations failed: {error}; a rollback across this deploy will "
            "need forcing",
            stage=STAGE,
        )
    await ctx.store.record_migrations(ctx.release, listing, error)


async def record_after_failure(ctx: Context, was_switching: bool) -> None:
    """After a deploy that failed once hosts had switched (and were put back): its
    ``post_release`` may have migrated the database all the same, so list what the new
    release's code sees, from a host that still holds it. Never raises: the deploy's own
    failure is what its user must see."""
    if ctx.env.migrations is None or not was_switching or ctx.lost or not ctx.created:
        return
    try:
        await record(ctx, hosts=sorted(ctx.created))
    except Exception as exc:  # reported; the failure stands
        ctx.recorder.log(f"listing the migrations after the failure: {exc}", stage=STAGE)
