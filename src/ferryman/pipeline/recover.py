"""Recovering a deploy whose worker died (SIGKILL, lost machine, a lease that ran out).

Another worker has taken over the deploy's lease (``services.queue.take_over_lost``) and the
project lock (``jobs.recover_job``); here it stops what the dead owner still runs on the
hosts, looks at every host and puts the fleet in order by the rule of ``domain.recovery``: a
deploy that had finished is recorded as the success it was; any other deploy is undone (every
host back on what it served before, the new release dir removed); a rollback is carried
forward to its target when that is complete everywhere. Nothing else is resumed: redeploying
is cheap and safe, guessing what a dead process had half done is not.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ferryman.commands import remote as cmd
from ferryman.domain import recovery
from ferryman.domain.statuses import DeployStatus, HostStatus, StageStatus
from ferryman.errors import FerrymanError
from ferryman.pipeline import (
    integrity,
    migrations,
    prepare,
    pull,
    relay,
    release,
    rollout,
    stopping,
    tasks,
)
from ferryman.pipeline import rollback as rollback_stage
from ferryman.pipeline.context import Context
from ferryman.remote.executor import Target

STAGE = "recover"


@dataclass(frozen=True)
class Abandoned:
    """What the record says of a deploy whose worker died."""

    kind: str
    release_name: str
    target: str  # the one release a rollback went to ("" when it went to several or none)
    stages: dict[str, str]  # stage name -> its status
    emergency: bool = False
    # hosts a gray release had taken (or was taking) out of the load balancer
    out_of_lb: tuple[str, ...] = ()

    def committed(self, restarts: bool) -> bool:
        """The record shows the deploy's work on hosts was done: a deploy reached its
        cleanup; a rollback finished its ``post_release`` (an emergency one, its switch and,
        when ``tasks.restart`` is set, the restart)."""
        if self.kind == "rollback":
            last = ("restart" if restarts else "switch") if self.emergency else "post_release"
            return self.stages.get(last) == StageStatus.SUCCESS
        return "cleanup" in self.stages


async def put_in_order(
    ctx: Context, abandoned: Abandoned, worker: str
) -> tuple[str, dict[str, Any] | None]:
    """Every host of a deploy whose worker died back in order (``ctx.undoing``, the dead
    run's stages in the recorder): the outcome and error to record."""
    rec = ctx.recorder
    rec.log(f"the worker running #{ctx.deploy_id} was lost; {worker} puts hosts in order")
    with rec.stage(STAGE, len(ctx.targets)):
        if ctx.env.mode == "pull":  # no SSH: the hosts act on their next poll
            return DeployStatus.FAILED, lost_error(worker, await pull.recover(ctx))
        return await _put_hosts_in_order(ctx, abandoned, worker)


def lost_error(worker: str, problem: str) -> dict[str, Any]:
    return {
        "code": "worker_lost",
        "message": "the worker running this deploy stopped" + problem,
        "details": {"recovered_by": worker},
    }


async def _put_hosts_in_order(
    ctx: Context, abandoned: Abandoned, worker: str
) -> tuple[str, dict[str, Any] | None]:
    rec = ctx.recorder
    # first, nothing the dead owner started may still run: a late switch or hook would undo
    # the repair (the stop waits until they are gone)
    stuck = await stopping.stop_deploy_commands(ctx, stage=STAGE)
    # what each host served before the deploy, read before anything is probed or written
    before = await ctx.store.hosts_before(ctx.layout.releases)
    try:
        await prepare.probe_hosts(ctx, stage=STAGE, refuse=False, record=False)
    except FerrymanError:  # the hosts that answered are put in order; the others are named
        pass
    unreachable = [t.key for t in ctx.targets if t.key not in ctx.facts]
    for key in unreachable:
        rec.host(key, status=HostStatus.FAILED, error="could not be reached to put it in order")
    views = {
        key: recovery.HostView(
            live=facts.live_release(ctx.layout),
            link=facts.link,
            # a host the dead run never probed was never touched: it stays as it is
            before=before.get(key, facts.live_release(ctx.layout) or facts.link or ""),
            complete=frozenset(n for n, sha in facts.releases.items() if sha),
            present=frozenset(facts.releases),
        )
        for key, facts in ctx.facts.items()
    }
    if abandoned.kind == "rollback" and abandoned.target and not abandoned.emergency:
        views = await _target_checked(ctx, abandoned, views)
    decided = recovery.plan(
        abandoned.kind,
        ctx.layout.releases,
        abandoned.release_name if abandoned.kind != "rollback" else "",
        abandoned.target,
        abandoned.committed(bool(ctx.env.tasks.restart_script.strip())),
        views,
    )
    await _list_migrations(ctx, abandoned, views, decided)
    decided.problems.update(dict.fromkeys(unreachable, "could not be reached"))
    for key, why in stuck.items():
        decided.problems.setdefault(key, f"its running commands could not be stopped: {why}")
    if decided.outcome == recovery.SUCCESS and not unreachable:
        rec.log("every host had finished this deploy before its worker was lost")
        for target in ctx.targets:
            rec.host(target.key, status=HostStatus.SUCCESS)
        return DeployStatus.SUCCESS, None
    done: dict[str, str | None] = {}
    removed: dict[str, list[str]] = {}

    async def one(target: Target) -> None:
        key = target.key
        if key in decided.switch:
            path = decided.switch[key]
            await ctx.remote(
                target,
                cmd.switch(ctx.layout, path, ctx.deploy_id),
                stage=STAGE,
                shown=f"switch {ctx.layout.webroot} -> {path}",
            )
        elif key in decided.unlink:
            await ctx.remote(
                target,
                cmd.remove_webroot_link(ctx.layout),
                stage=STAGE,
                shown=f"remove {ctx.layout.webroot} (no release before this deploy)",
            )
        done[key] = decided.live.get(key)
        await ctx.remote(
            target,
            cmd.remove_leftovers(ctx.layout, ctx.deploy_id),
            stage=STAGE,
            shown="remove the staging copy and a half-made switch link",
        )
        if ctx.env.transfer.fanout:  # the dead run may have left its relay key (tiered fan-out)
            await ctx.remote(
                target,
                relay.revoke_command(ctx),
                stage=STAGE,
                shown="remove the relay key and directory",
            )
        if key in decided.remove:
            name = decided.remove[key]
            await ctx.remote(target, cmd.remove_releases(ctx.layout, [name]), stage=STAGE)
            removed[key] = [name]
        changed = key in decided.switch or key in decided.unlink
        forward = decided.outcome == recovery.FORWARD
        rec.host(
            key,
            status=(
                (HostStatus.SUCCESS if forward else HostStatus.REVERTED)
                if changed
                else HostStatus.UNCHANGED
            ),
            **({"error": decided.problems[key]} if key in decided.problems else {}),
        )

    reached = [t for t in ctx.targets if t.key in ctx.facts]
    emergency = decided.outcome == recovery.FORWARD and abandoned.emergency
    try:
        await ctx.each_host(STAGE, one, reached)
        if decided.outcome == recovery.REVERT and ctx.env.post_release_on_revert:
            await _post_release_again(ctx, abandoned, decided, views)
        if emergency:
            # the site is down and every host now serves the release it needs: restart it
            # there (the dead run may have stopped a restart half way), as the rollback would
            await tasks.restart(ctx, {t.key: abandoned.target for t in reached})
    finally:
        await ctx.store.set_live(done)
        await ctx.store.mark_removed(removed)
    await _back_into_load_balancer(ctx, abandoned, decided, done)
    if emergency and not decided.problems:
        rec.log("the emergency rollback was completed on every host by the recovery")
        return DeployStatus.SUCCESS, None
    return DeployStatus.FAILED, lost_error(worker, recovery.describe(decided))


async def _post_release_again(
    ctx: Context, abandoned: Abandoned, decided: recovery.Plan, views: dict[str, recovery.HostView]
) -> None:
    """``post_release_on_revert``: each host the dead run may have switched runs
    ``post_release`` again in the release it serves (a PHP-FPM reload, an opcache reset), as a
    run that fails after its switch does (``release.revert``): the hosts the recovery switches
    back, and every host the new release reached complete — the run may have switched it and
    put it back itself before its hooks ran, and its stage record (written in batches) cannot
    tell. A host where it fails is named as not in order; one the new release never reached
    is left alone."""
    new = abandoned.release_name
    hosts = [
        t
        for t in ctx.targets
        if t.key in ctx.facts
        and decided.live.get(t.key)
        and (t.key in decided.switch or (bool(new) and new in views[t.key].complete))
    ]
    if not hosts:
        return
    with ctx.recorder.stage("post_release", len(hosts)):
        for target in hosts:
            old = str(decided.live[target.key])
            try:
                await tasks.remote_task(ctx, "post_release", [target], cwd=ctx.layout.release(old))
            except FerrymanError as exc:
                decided.problems.setdefault(target.key, f"post_release in {old}: {exc.message}")


async def _list_migrations(
    ctx: Context,
    abandoned: Abandoned,
    views: dict[str, recovery.HostView],
    decided: recovery.Plan,
) -> None:
    """A deploy undone after its hosts had switched may have migrated the database in its
    ``post_release``: list what the new release's code sees, from a host that still holds
    it, before the new release dir is removed — as a run that fails there does
    (``migrations.record_after_failure``), so that a later rollback's guard knows what was
    applied. A listing that cannot be made is recorded as failed: the guard then asks for
    a forced rollback."""
    new = abandoned.release_name
    if (
        ctx.env.migrations is None
        or abandoned.kind == "rollback"
        or decided.outcome == recovery.SUCCESS
        or not new
    ):
        return
    # switched: as the record says, or as a host says (the record is written in batches and
    # lags the hosts: a run killed just after its switch may have left none of it)
    switched = release.SWITCH in abandoned.stages or any(v.live == new for v in views.values())
    if not switched:
        return
    holding = sorted(key for key, view in views.items() if new in view.complete)
    if not holding:
        return
    ctx.release = new
    await migrations.record(ctx, hosts=holding)


async def _target_checked(
    ctx: Context, abandoned: Abandoned, views: dict[str, recovery.HostView]
) -> dict[str, recovery.HostView]:
    """A rollback is only carried forward to a target that matches its manifest on every
    host: when the dead run had not finished checking it (its ``verify`` stage), the hosts
    that have the target hash it now, and a host where it does not match no longer counts
    it as complete (the rollback is then undone, as it would have refused)."""
    if abandoned.stages.get(rollback_stage.STAGE) == StageStatus.SUCCESS:
        return views
    target = abandoned.target
    wanted = {key: [target] for key, view in views.items() if target in view.complete}
    if not wanted:
        return views
    damaged = await integrity.damaged(ctx, {key: target for key in wanted}, STAGE)
    for key, why in damaged.items():
        ctx.recorder.log(f"{target} does not match its manifest here ({why})", host=key)
    return {
        key: (
            dataclasses.replace(view, complete=view.complete - {target}) if key in damaged else view
        )
        for key, view in views.items()
    }


async def _back_into_load_balancer(
    ctx: Context, abandoned: Abandoned, decided: recovery.Plan, done: dict[str, str | None]
) -> None:
    """``lb_in`` for the hosts the dead run had taken out of the load balancer, once each is
    in order (on the release it now serves, recorded in ``done``); a host not in order stays
    out, and says so."""
    out = [k for k in abandoned.out_of_lb if k in ctx.facts or k in decided.problems]
    ready = [k for k in out if k in done and k not in decided.problems]
    for key in out:
        if key not in ready:
            ctx.recorder.log("left out of the load balancer: it is not in order", host=key)
    if ready:
        with ctx.recorder.stage("lb_in", len(ready)):  # the hosts' outcomes are kept in it
            failed = await rollout.lb_in_again(ctx, ready)
        for key, why in failed.items():
            decided.problems.setdefault(key, f"lb_in failed: {why}")
    if ready:
        ctx.recorder.log(f"back into the load balancer: {', '.join(ready)}")
