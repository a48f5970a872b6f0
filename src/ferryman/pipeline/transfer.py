"""transfer: package once, then put the release on every host in parallel.

A host that already has a complete release (the one its webroot points to) gets a delta: the
release dir starts as a hard-linked copy of that release, changed and removed paths are deleted
(so changed files get fresh inodes and old releases are never modified), and only the changed
files cross the wire. Other hosts get the full package. Hosts with the same base share one
package file; it is streamed to each of them in chunks over their one SSH connection.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from ferryman.commands import remote as cmd
from ferryman.commands.remote import inline_delete_fits, receive_release
from ferryman.domain.manifest import Manifest, decode, diff, excluded
from ferryman.errors import Conflict, InternalError, RemoteError
from ferryman.pipeline import configs, integrity, prepare, relay
from ferryman.pipeline.context import Context
from ferryman.pipeline.package import (
    ALWAYS_EXCLUDED,
    build_manifest,
    choose_compression,
    write_package,
)
from ferryman.remote.executor import Target, fan_out

STAGE = "transfer"
Base = tuple[str, str] | None  # (release name, manifest sha1) or a full transfer


def version_text(ctx: Context) -> str:
    if ctx.resolved is None:
        raise InternalError(f"deploy #{ctx.deploy_id}: the version file before the checkout")
    fields = {
        "project": ctx.project.project,
        "env": ctx.env_name,
        "kind": ctx.kind,
        "release": ctx.release,
        "ref": ctx.ref,
        "commit": ctx.resolved.commit,
        "deploy_id": ctx.deploy_id,
        "deployed_at": ctx.started.isoformat(timespec="seconds"),
        "deployed_by": ctx.requested_by,
    }
    return "".join(f"{k}: {json.dumps(v, ensure_ascii=False)}\n" for k, v in fields.items())


def group_by_base(ctx: Context) -> dict[Base, list[Target]]:
    groups: dict[Base, list[Target]] = {}
    for target in ctx.targets:
        base = base_of(ctx, target)
        key: Base = (base, ctx.facts[target.key].releases[base] or "") if base else None
        groups.setdefault(key, []).append(target)
    return groups


def base_of(ctx: Context, target: Target) -> str | None:
    """The live release a host's new release can start from (it has a manifest)."""
    facts = ctx.facts[target.key]
    live = facts.live_release(ctx.layout)
    return live if live and facts.releases.get(live) else None


async def prelink(ctx: Context) -> None:
    """While the deploy host checks out and builds, every host with a live release checks it
    against its manifest and makes the hard-linked copy the delta will start from (the slow
    part of a small redeploy: one ``mkdir``/``link`` per entry), both at once. A host where the
    link fails simply starts from scratch later; one whose live release is damaged gets the
    full release (its copy is removed after the transfer). Starts once the probe (running
    beside the checkout) has said what each host serves; nothing when it failed."""
    if not await prepare.probed_ok(ctx):
        return

    async def one(target: Target) -> None:
        base = base_of(ctx, target)
        if base is None:
            return
        await ctx.remote(
            target,
            cmd.prelink(ctx.layout, base, ctx.deploy_id),
            stage=STAGE,
            shown=f"link {base} while building",
        )
        ctx.prelinked[target.key] = base

    failures, _ = await asyncio.gather(
        fan_out(ctx.targets, one, ctx.env.parallel), check_bases(ctx)
    )
    for host, exc in failures.items():
        ctx.recorder.log(f"early link failed ({exc}); linking during transfer", host=host)


async def check_bases(ctx: Context) -> None:
    """Check every host's delta base (its live release) against its manifest; a host whose
    base does not match, or cannot be checked, gets the full release, so that a file or
    directory deleted or changed in the live release is never carried into the new one —
    nor a file dropped into it, or a changed mode (a config-only deploy, which ships the live
    release again, keeps those).

    (A base is dropped by marking its manifest unknown in the facts, as for a release without
    one. This runs in the background from the start of the deploy: a config-only deploy has
    checked the live releases' facts before it first awaits.)"""
    wanted = {t.key: [base] for t in ctx.targets if (base := base_of(ctx, t)) is not None}
    try:
        found = await integrity.inspect(ctx, wanted, STAGE, background=True)
    except Exception as exc:  # cancelled or no longer ours: the deploy stops at its next step
        found = {
            host: [integrity.Verdict(names[0], f"{integrity.UNCHECKED}: {exc}")]
            for host, names in wanted.items()
        }
    for host, verdicts in found.items():
        for verdict in verdicts:
            if verdict.damaged:
                ctx.facts[host].releases[verdict.release] = None  # never a delta base
                why = (
                    verdict.reason
                    if verdict.reason.startswith(integrity.UNCHECKED)
                    else f"does not match its manifest ({verdict.reason})"
                )
                ctx.recorder.log(
                    f"live release {verdict.release} {why}: sending the full release",
                    host=host,
                    stage=STAGE,
                )
            elif verdict.notes and ctx.kind != "config":
                # complete, but with entries or modes its manifest does not have (a file
                # dropped in, a chmod): a hard-linked copy would carry them into the new
                # release, which must be exactly the build
                ctx.facts[host].releases[verdict.release] = None
                ctx.recorder.log(
                    f"live release {verdict.release} has what its manifest does not "
                    f"({verdict.notes}): sending the full release",
                    host=host,
                    stage=STAGE,
                )


async def _base_manifest(ctx: Context, base: str, hosts: list[Target]) -> Manifest | None:
    try:
        result = await ctx.remote(
            hosts[0],
            cmd.read_manifest(ctx.layout, base),
            stage=STAGE,
            quiet=True,
            full_output=True,
            shown=f"read manifest of {base}",
        )
        return decode(result.stdout.encode())
    except (RemoteError, ValueError, KeyError, TypeError, IndexError):
        ctx.recorder.log(f"no usable manifest for {base}; sending the full release", stage=STAGE)
        return None


async def _live_manifest(ctx: Context) -> Manifest:
    """A config-only deploy's manifest: the live release's, less the paths now config files."""
    base = await _base_manifest(ctx, ctx.target_release, ctx.targets)
    if base is None:
        raise Conflict(f"{ctx.target_release} has no usable manifest; deploy a commit instead")
    patterns = [*configs.excludes(ctx), *ALWAYS_EXCLUDED]
    return {path: entry for path, entry in base.items() if not excluded(path, patterns)}


def _refuse_damaged_live(ctx: Context) -> None:
    """A config-only deploy copies the live release: there is no build to send in full."""
    damaged = sorted(t.key for t in ctx.targets if base_of(ctx, t) is None)
    if damaged:
        raise Conflict(
            f"the live release {ctx.target_release} does not match its manifest on "
            f"{', '.join(damaged)} (see the log); a config-only deploy would copy it: "
            "deploy a commit instead"
        )


async def run(ctx: Context) -> None:
    if ctx.kind == "config":
        manifest = await _live_manifest(ctx)
    else:
        manifest = await asyncio.to_thread(
            build_manifest, ctx.tree, [*ctx.env.excludes, *configs.excludes(ctx)]
        )
    configs.check_parents(ctx, manifest)
    compression = choose_compression(
        ctx.env.compress,
        sum(1 for t in ctx.targets if "zstd" in ctx.facts[t.key].tools),
        len(ctx.targets),
    )
    if ctx.prelink_task is not None:
        await ctx.prelink_task  # never raises: failed hosts just were not prelinked
    else:
        await check_bases(ctx)
    if ctx.kind == "config":
        _refuse_damaged_live(ctx)
    version = version_text(ctx)
    groups = group_by_base(ctx)
    plans: list[tuple[str | None, list[str], Path, list[Target]]] = []
    tiered: relay.Relay | None = None
    full_hosts = groups.pop(None, [])
    for index, (key, hosts) in enumerate(groups.items()):
        if key is None:  # the full transfers, popped above
            raise InternalError("a full transfer among the incremental ones")
        base = key[0]
        base_manifest = await _base_manifest(ctx, base, hosts)
        if base_manifest is None:
            full_hosts += hosts
            continue
        delta = diff(base_manifest, manifest)
        package = ctx.package_dir / f"delta-{index}.tar"
        size = await asyncio.to_thread(
            write_package, ctx.tree, delta.send, manifest, version, package, compression
        )
        ctx.recorder.log(
            f"delta against {base}: {len(delta.send)} changed, {len(delta.delete)} removed, "
            f"{len(manifest) - len(delta.send)} linked; {compression} package {size / 1e6:.1f} MB "
            f"for {len(hosts)} host(s)",
            stage=STAGE,
        )
        plans.append((base, delta.delete, package, hosts))
    if full_hosts:
        package = ctx.package_dir / "full.tar"
        size = await asyncio.to_thread(
            write_package, ctx.tree, sorted(manifest), manifest, version, package, compression
        )
        ctx.recorder.log(
            f"full {compression} package: {len(manifest)} entries, {size / 1e6:.1f} MB "
            f"for {len(full_hosts)} host(s)",
            stage=STAGE,
        )
        plans.append((None, [], package, full_hosts))
        if relay.applies(ctx, full_hosts):  # tiered fan-out: relays pass the package on
            tiered = relay.Relay(ctx, relay.relayable(full_hosts), package)

    plan_for = {t.key: plan for plan in plans for t in plan[3]}
    warned: set[tuple[str, str]] = set()  # unknown ${NAME} in a config file: said once

    async def one(target: Target) -> None:
        base, delete, package, _hosts = plan_for[target.key]
        ctx.created.add(target.key)
        staged_by = None
        if base is not None and ctx.prelinked.get(target.key) == base:
            staged_by = ctx.deploy_id
            ctx.prelinked.pop(target.key)
        # tiered fan-out: a relay's own checked copy, or a relayed one checked on the host
        received = tiered is not None and await tiered.unpack(target, ctx.release, compression)
        if not received:
            if inline_delete_fits(delete):  # the usual case: one command per host
                command = receive_release(
                    ctx.layout,
                    ctx.release,
                    compression,
                    base=base,
                    staged_by=staged_by,
                    delete=delete,
                    shared=ctx.env.shared,
                )
            else:
                start = (
                    cmd.adopt_prelinked(ctx.layout, ctx.release, ctx.deploy_id, ctx.env.shared)
                    if staged_by is not None
                    else cmd.start_release(ctx.layout, ctx.release, base, ctx.env.shared)
                )
                await ctx.remote(
                    target, start, stage=STAGE, stdin=b"\0".join(p.encode() for p in delete)
                )
                command = cmd.unpack(ctx.layout, ctx.release, compression)
            await ctx.remote(
                target, command, stage=STAGE, source=package, timeout=ctx.env.transfer_timeout
            )
        if ctx.prelinked.pop(target.key, None) is not None:  # linked early, then not used
            await ctx.remote(target, cmd.remove_staging(ctx.layout, ctx.deploy_id), stage=STAGE)
        shared = cmd.link_shared(ctx.layout, ctx.release, ctx.env.shared)
        if shared is not None:
            await ctx.remote(target, shared, stage=STAGE, shown="link shared paths")
        await configs.write(ctx, target, warned)

    try:
        if tiered is not None:
            try:
                await tiered.distribute()
            finally:
                await tiered.revoke()  # what a failure or a fallback left
        await ctx.each_host(STAGE, one)
    finally:
        if tiered is not None:
            await tiered.remove()
    if ctx.resolved is None:
        raise InternalError(f"deploy #{ctx.deploy_id}: a transfer before the checkout")
    await ctx.store.record_releases(
        ctx.resolved.commit, ctx.release, [t.key for t in ctx.targets], "complete"
    )
