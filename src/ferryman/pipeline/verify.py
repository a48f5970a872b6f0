"""Drift check: what each host really serves (its webroot link and the release file there)
against what the records say is live — hosts switched or edited by hand are flagged; and,
when asked, every release a host serves or keeps checked against its manifest (a file or
directory deleted or changed there makes it damaged)."""

from __future__ import annotations

import json
import posixpath
from typing import Any

from ferryman.commands import remote as cmd
from ferryman.errors import FerrymanError
from ferryman.pipeline import integrity
from ferryman.pipeline.context import Context
from ferryman.remote.executor import Target, fan_out


def parse_live_state(output: str) -> tuple[str | None, dict[str, Any]]:
    """(link target or None, the release file's fields)."""
    link: str | None = None
    fields: dict[str, Any] = {}
    for line in output.splitlines():
        if line.startswith("link\t"):
            link = line[5:]
        elif ": " in line:
            key, _, raw = line.partition(": ")
            try:
                fields[key] = json.loads(raw)
            except ValueError:
                fields[key] = raw
    return link, fields


async def verify(
    ctx: Context, recorded: dict[str, str], kept: dict[str, list[str]] | None = None
) -> dict[str, dict[str, Any]]:
    """Per host: ``actual`` (the release the link points to), ``drift`` (a reason, or "").

    With ``kept`` ({host: the releases the records say it keeps}), also ``damaged``
    ({release: reason}) for the live release and the kept ones that do not match their
    manifest, and ``notes`` ({release: what differs without damaging it}: extra entries,
    modes)."""
    found: dict[str, dict[str, Any]] = {}

    async def one(target: Target) -> None:
        try:
            result = await ctx.remote(
                target, cmd.live_state(ctx.layout), stage="verify", quiet=True, shown="live state"
            )
        except FerrymanError as exc:
            found[target.key] = {"actual": None, "drift": f"unreachable: {exc.message}"}
            return
        link, fields = parse_live_state(result.stdout)
        want = recorded.get(target.key)
        actual = None
        drift = ""
        if link is None:
            drift = "no webroot link" if want else ""
        elif posixpath.dirname(link.rstrip("/")) != ctx.layout.releases:
            drift = f"the webroot points outside the releases dir: {link}"
        else:
            actual = posixpath.basename(link.rstrip("/"))
            if actual != want:
                drift = f"live on {actual}, the records say {want or 'nothing'}"
            elif fields.get("release") != actual:
                drift = "the release file does not match: changed by hand"
        found[target.key] = {"actual": actual, "drift": drift}

    try:
        await fan_out(ctx.targets, one, ctx.env.parallel)
        if kept is not None:
            await _check_releases(ctx, found, kept)
    finally:
        await ctx.executor.close()
    return found


async def _check_releases(
    ctx: Context, found: dict[str, dict[str, Any]], kept: dict[str, list[str]]
) -> None:
    """Each reachable host's live and kept releases against their manifests, into ``found``."""
    wanted: dict[str, list[str]] = {}
    for key, row in found.items():
        row["damaged"], row["notes"] = {}, {}
        if row["drift"].startswith("unreachable"):
            continue
        names = [*kept.get(key, [])]
        if row["actual"] and row["actual"] not in names:
            names.append(row["actual"])
        wanted[key] = names
    for key, verdicts in (await integrity.inspect(ctx, wanted, "verify")).items():
        found[key]["damaged"] = {v.release: v.reason for v in verdicts if v.damaged}
        found[key]["notes"] = {v.release: v.notes for v in verdicts if v.notes}
