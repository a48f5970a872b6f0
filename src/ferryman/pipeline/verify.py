"""Drift check: what each host really serves (its webroot link and the release file there)
against what the records say is live — hosts switched or edited by hand are flagged."""

from __future__ import annotations

import json
import posixpath
from typing import Any

from ferryman.commands import remote as cmd
from ferryman.errors import FerrymanError
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


async def verify(ctx: Context, recorded: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per host: ``actual`` (the release the link points to), ``drift`` (a reason, or "")."""
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
    finally:
        await ctx.executor.close()
    return found
