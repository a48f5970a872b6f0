"""Releases checked against their manifest on the hosts: every entry's kind, content (sha1,
hashed on the host) and link target, so that a release with files deleted or changed is never
rolled back to, copied into a new release (the delta base) or reported healthy.

One listing command per release and host (``commands.integrity``), at most ``parallel`` hosts
at once; each distinct listing is parsed and compared once, each distinct manifest read from
one host and decoded once (a fleet on one release costs about one host's parsing).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ferryman.commands import integrity as cmd
from ferryman.commands.remote import read_manifest
from ferryman.domain.manifest import Manifest, compare, decode
from ferryman.errors import RemoteError, StageTimeout
from ferryman.pipeline.context import Context
from ferryman.remote.executor import Target, fan_out

T = TypeVar("T")
UNCHECKED = "could not be checked"  # how a reason starts when the host could not be asked


@dataclass(frozen=True)
class Verdict:
    """One release on one host: ``reason`` says why it is damaged ("" when it matches its
    manifest); ``notes`` what differs without making it so (extra entries, modes)."""

    release: str
    reason: str = ""
    notes: str = ""

    @property
    def damaged(self) -> bool:
        return bool(self.reason)


async def damaged(ctx: Context, releases: dict[str, str], stage: str) -> dict[str, str]:
    """{host key: release name} → {host key: reason} for the releases that do not match their
    manifest (missing, changed, no release dir, no readable manifest, or the host could not be
    asked). Hosts whose release is complete are not in the result."""
    found = await inspect(ctx, {host: [name] for host, name in releases.items()}, stage)
    return {
        host: verdict.reason
        for host, verdicts in found.items()
        for verdict in verdicts
        if verdict.damaged
    }


async def inspect(
    ctx: Context, wanted: Mapping[str, Sequence[str]], stage: str, *, background: bool = False
) -> dict[str, list[Verdict]]:
    """{host key: release names} → {host key: a verdict per release}, every host in parallel
    (bounded by the deploy's limit or ``parallel``), the releases of one host one after the
    other; with ``background`` (nobody waits for it) at a low CPU priority on the hosts. A
    cancelled or lost deploy's error propagates; a host that cannot be asked gets a verdict
    saying so."""
    seen = _Seen(cmd.BACKGROUND if background else 0)
    out: dict[str, list[Verdict]] = {}
    by_key = {t.key: t for t in ctx.targets}
    unknown = [key for key in wanted if key not in by_key]
    for key in unknown:
        out[key] = [Verdict(n, "not a host of this environment") for n in wanted[key]]

    async def one(target: Target) -> None:
        verdicts = []
        for name in wanted[target.key]:
            try:
                verdicts.append(await _check(ctx, target, name, stage, seen))
            except (RemoteError, StageTimeout) as exc:
                verdicts.append(Verdict(name, f"{UNCHECKED}: {exc}"))
        out[target.key] = verdicts

    chosen = [by_key[key] for key in wanted if key in by_key]
    failures = await fan_out(chosen, one, ctx.limit or ctx.env.parallel)
    for target in chosen:
        if target.key in failures:
            raise failures[target.key]
    return out


async def _check(ctx: Context, target: Target, name: str, stage: str, seen: _Seen) -> Verdict:
    result = await ctx.remote(
        target,
        cmd.listing(ctx.layout, name, seen.niceness),
        stage=stage,
        quiet=True,
        full_output=True,
        shown=f"check {name} against its manifest",
    )
    reason, notes = await seen.judge(result.stdout, ctx, target, name, stage)
    return Verdict(name, reason, notes)


class _Seen:
    """What one check has seen: the verdict on each distinct listing (the same release lists
    the same on every host: parsed and compared once) and each manifest by sha1 (read from the
    first host that has it, decoded once). A host whose own read fails does not fail others:
    they read for themselves."""

    def __init__(self, niceness: int) -> None:
        self.niceness = niceness
        self._verdicts: dict[str, asyncio.Task[tuple[str, str]]] = {}
        self._manifests: dict[str, asyncio.Task[Manifest | None]] = {}

    async def judge(
        self, output: str, ctx: Context, target: Target, name: str, stage: str
    ) -> tuple[str, str]:
        """(reason, notes) for a listing."""
        key = f"{name}\0{output}"  # "no such release" reads the same for every name
        return await _once(
            self._verdicts, key, lambda: self._judge(output, ctx, target, name, stage)
        )

    async def _judge(
        self, output: str, ctx: Context, target: Target, name: str, stage: str
    ) -> tuple[str, str]:
        try:
            listing = await asyncio.to_thread(cmd.parse, output)
        except ValueError as exc:
            return f"its listing could not be read: {exc}", ""
        if not listing.present:
            return f"release {name} is missing", ""
        digest = listing.manifest_digest
        if digest is None:
            return "its manifest is missing", ""
        manifest = await _once(
            self._manifests, digest, lambda: _read(ctx, target, name, digest, stage)
        )
        if manifest is None:
            return "its manifest is unreadable", ""
        damage = await asyncio.to_thread(
            compare,
            manifest,
            listing.entries,
            config=listing.config,
            shared_dir=ctx.layout.shared_dir,
        )
        return damage.summary(), damage.notes()


async def _once(tasks: dict[str, asyncio.Task[T]], key: str, work: Callable[[], Awaitable[T]]) -> T:
    """``work()`` once per key; a caller whose key's work failed on a host (that host's own
    trouble) does the work itself."""
    task = tasks.get(key)
    if task is None:
        task = tasks[key] = asyncio.ensure_future(work())
        return await asyncio.shield(task)
    try:
        return await asyncio.shield(task)
    except (RemoteError, StageTimeout):
        return await work()


async def _read(
    ctx: Context, target: Target, name: str, digest: str, stage: str
) -> Manifest | None:
    result = await ctx.remote(
        target,
        read_manifest(ctx.layout, name),
        stage=stage,
        quiet=True,
        full_output=True,
        shown=f"read manifest of {name}",
    )
    text = result.stdout.encode()
    if hashlib.sha1(text, usedforsecurity=False).hexdigest() != digest:
        return None  # changed since it was listed
    try:
        return await asyncio.to_thread(decode, text)
    except (ValueError, KeyError, TypeError, IndexError):
        return None
