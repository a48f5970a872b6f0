"""Configuration detection (``ferryman check``): everything a deploy needs, checked live.

One line per check and host: SSH reachable with the key and the host key known, releases dir
writable, webroot parent exists, webroot not a real directory, tools present; and the repository
reachable from the deploy host. Nothing is changed except creating the releases dir.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any

from ferryman.commands import remote as cmd
from ferryman.errors import FerrymanError
from ferryman.pipeline.checkout import repo_for
from ferryman.pipeline.context import Context
from ferryman.remote.executor import Target, fan_out


@dataclass(frozen=True)
class Check:
    host: str
    check: str
    ok: bool
    detail: str = ""


def checks_from_probe(host: str, output: str) -> list[Check]:
    found: list[Check] = []
    for line in output.splitlines():
        parts = line.split("\t")
        if parts[0] == "webroot":
            state = parts[1]
            ok = state != "real"
            detail = {
                "link": f"symlink to {parts[2] if len(parts) > 2 else ''}",
                "missing": "not there yet (created on first deploy)",
                "real": "a real directory or file: Ferryman will refuse to replace it",
            }[state]
            found.append(Check(host, "webroot is not a real directory", ok, detail))
        elif parts[0] == "parent":
            found.append(Check(host, "webroot parent exists", parts[1] == "ok"))
        elif parts[0] == "releases":
            found.append(Check(host, "releases dir writable", parts[1] == "ok"))
        elif parts[0] == "tool":
            found.append(Check(host, f"{parts[1]} present", parts[2] == "ok"))
        elif parts[0] == "need" and len(parts) > 3:
            ok = parts[3] == "ok"
            fix = "" if ok else f"install the {parts[1]} {parts[2]} on this host"
            found.append(Check(host, f"requires {parts[1]} {parts[2]}", ok, fix))
        elif parts[0] == "optional":
            missing = "" if parts[2] == "ok" else "missing: packages fall back to gzip"
            found.append(Check(host, f"{parts[1]} present (optional)", True, missing))
    return found


async def run_checks(ctx: Context) -> list[Check]:
    results: list[Check] = []

    async def one(target: Target) -> None:
        try:
            await ctx.executor.connect(target, "check")
        except FerrymanError as exc:
            results.append(Check(target.key, "ssh reachable, host key known", False, str(exc)))
            return
        results.append(
            Check(target.key, "ssh reachable, host key known", True, f"as {target.user}")
        )
        try:
            result = await ctx.executor.run(
                target,
                cmd.probe(ctx.layout, ctx.env.requires.commands, ctx.env.requires.packages),
                stage="check",
                timeout=ctx.env.command_timeout,
            )
        except FerrymanError as exc:
            results.append(Check(target.key, "probe", False, str(exc)))
            return
        results.extend(checks_from_probe(target.key, result.stdout))

    async def repo_check() -> None:
        try:
            await repo_for(ctx).reachable()
            results.append(Check("deploy host", "repository reachable", True, ctx.project.repo))
        except FerrymanError as exc:
            results.append(Check("deploy host", "repository reachable", False, exc.message))

    try:
        await asyncio.gather(fan_out(ctx.targets, one, ctx.env.parallel), repo_check())
    finally:
        await ctx.executor.close()
    order = {t.key: i for i, t in enumerate(ctx.targets)}
    return sorted(results, key=lambda c: (order.get(c.host, -1), c.check))


def as_dicts(checks: list[Check]) -> list[dict[str, Any]]:
    return [asdict(c) for c in checks]
