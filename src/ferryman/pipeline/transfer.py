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
from ferryman.domain.manifest import Manifest, decode, diff
from ferryman.errors import RemoteError
from ferryman.pipeline.context import Context
from ferryman.pipeline.package import build_manifest, write_package
from ferryman.remote.executor import Target
from ferryman.services import deploys

STAGE = "transfer"
Base = tuple[str, str] | None  # (release name, manifest sha1) or a full transfer


def version_text(ctx: Context) -> str:
    assert ctx.resolved is not None
    fields = {
        "project": ctx.project.project,
        "env": ctx.env_name,
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
        facts = ctx.facts[target.key]
        live = facts.live_release(ctx.layout)
        sha = facts.releases.get(live) if live else None
        key: Base = (live, sha) if live and sha else None
        groups.setdefault(key, []).append(target)
    return groups


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


async def run(ctx: Context) -> None:
    manifest = await asyncio.to_thread(build_manifest, ctx.tree, ctx.env.excludes)
    version = version_text(ctx)
    groups = group_by_base(ctx)
    plans: list[tuple[str | None, list[str], Path, list[Target]]] = []
    full_hosts = groups.pop(None, [])
    for index, (key, hosts) in enumerate(groups.items()):
        assert key is not None
        base = key[0]
        base_manifest = await _base_manifest(ctx, base, hosts)
        if base_manifest is None:
            full_hosts += hosts
            continue
        delta = diff(base_manifest, manifest)
        package = ctx.package_dir / f"delta-{index}.tar"
        size = await asyncio.to_thread(
            write_package, ctx.tree, delta.send, manifest, version, package, ctx.env.compress
        )
        ctx.recorder.log(
            f"delta against {base}: {len(delta.send)} changed, {len(delta.delete)} removed, "
            f"{len(manifest) - len(delta.send)} linked; package {size / 1e6:.1f} MB "
            f"for {len(hosts)} host(s)",
            stage=STAGE,
        )
        plans.append((base, delta.delete, package, hosts))
    if full_hosts:
        package = ctx.package_dir / "full.tar"
        size = await asyncio.to_thread(
            write_package, ctx.tree, sorted(manifest), manifest, version, package, ctx.env.compress
        )
        ctx.recorder.log(
            f"full package: {len(manifest)} entries, {size / 1e6:.1f} MB "
            f"for {len(full_hosts)} host(s)",
            stage=STAGE,
        )
        plans.append((None, [], package, full_hosts))

    plan_for = {t.key: plan for plan in plans for t in plan[3]}

    async def one(target: Target) -> None:
        base, delete, package, _hosts = plan_for[target.key]
        ctx.created.add(target.key)
        await ctx.remote(
            target,
            cmd.start_release(ctx.layout, ctx.release, base),
            stage=STAGE,
            stdin=b"\0".join(p.encode() for p in delete),
        )
        await ctx.remote(
            target,
            cmd.unpack(ctx.layout, ctx.release, ctx.env.compress),
            stage=STAGE,
            source=package,
            timeout=ctx.env.transfer_timeout,
        )
        shared = cmd.link_shared(ctx.layout, ctx.release, ctx.env.shared)
        if shared is not None:
            await ctx.remote(target, shared, stage=STAGE, shown="link shared paths")

    await ctx.each_host(STAGE, one)
    assert ctx.resolved is not None
    await asyncio.to_thread(
        deploys.record_releases,
        ctx.db,
        ctx.project_id,
        ctx.env_name,
        ctx.deploy_id,
        ctx.resolved.commit,
        ctx.release,
        [t.key for t in ctx.targets],
        "complete",
    )
