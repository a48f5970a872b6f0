"""Configuration detection (``ferryman check``): everything a deploy needs, checked live.

One line per check and host: SSH reachable with the key and the host key known, releases dir
writable, webroot parent exists, webroot not a real directory, tools present, the live release
matching its manifest (every file hashed on the host); and the repository reachable from the
deploy host. Nothing is changed except creating the releases dir.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any

from ferryman.commands import probe
from ferryman.commands.probe import ProbeReport
from ferryman.config.problems import hook_notes
from ferryman.errors import FerrymanError
from ferryman.pipeline import integrity
from ferryman.pipeline.checkout import repo_for
from ferryman.pipeline.context import Context, HostFacts
from ferryman.remote.executor import Target, fan_out


@dataclass(frozen=True)
class Check:
    host: str
    check: str
    ok: bool
    detail: str = ""


WEBROOT_DETAIL = {
    "missing": "not there yet (created on first deploy)",
    "real": "a real directory or file: Ferryman will refuse to replace it",
}


def checks_from_probe(host: str, report: ProbeReport) -> list[Check]:
    """One line per fact of the probe's report."""
    webroot = (
        f"symlink to {report.link or ''}"
        if report.webroot == "link"
        else WEBROOT_DETAIL[report.webroot]
    )
    found: list[Check] = []
    for need in report.needs:
        fix = "" if need.ok else f"install the {need.kind} {need.name} on this host"
        found.append(Check(host, f"requires {need.kind} {need.name}", need.ok, fix))
    found += [
        Check(host, "webroot is not a real directory", report.webroot != "real", webroot),
        Check(host, "webroot parent exists", report.parent_ok),
        Check(host, "releases dir writable", report.releases_writable),
    ]
    found += [Check(host, f"{name} present", ok) for name, ok in report.tools.items()]
    found += [
        Check(
            host,
            f"{name} present (optional)",
            True,
            "" if ok else "missing: packages fall back to gzip",
        )
        for name, ok in report.optional.items()
    ]
    return found


async def run_checks(ctx: Context) -> list[Check]:
    results: list[Check] = []
    lives: dict[str, str] = {}  # host -> the release its webroot points to

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
                probe.probe(ctx.layout, ctx.env.requires.commands, ctx.env.requires.packages),
                stage="check",
                timeout=ctx.env.command_timeout,
                full_output=True,
            )
            report = probe.parse(result.stdout)
        except (FerrymanError, ValueError) as exc:
            results.append(Check(target.key, "probe", False, str(exc)))
            return
        results.extend(checks_from_probe(target.key, report))
        live = HostFacts(link=report.link).live_release(ctx.layout)
        if live:
            lives[target.key] = live

    async def repo_check() -> None:
        try:
            await repo_for(ctx).reachable()
            results.append(Check("deploy host", "repository reachable", True, ctx.project.repo))
        except FerrymanError as exc:
            results.append(Check("deploy host", "repository reachable", False, exc.message))

    try:
        await asyncio.gather(fan_out(ctx.targets, one, ctx.env.parallel), repo_check())
        results += await live_checks(ctx, lives)
        results += [Check("deploy host", "hook variables", True, n) for n in hook_notes(ctx.env)]
    finally:
        await ctx.executor.close()
    order = {t.key: i for i, t in enumerate(ctx.targets)}
    return sorted(results, key=lambda c: (order.get(c.host, -1), c.check))


async def live_checks(ctx: Context, lives: dict[str, str]) -> list[Check]:
    """The release each host serves, against its manifest: a file deleted or changed there is
    a failed check, naming what."""
    found = await integrity.inspect(ctx, {host: [name] for host, name in lives.items()}, "check")
    return [
        Check(
            host,
            "live release matches its manifest",
            not verdict.damaged,
            f"{verdict.release}: {verdict.reason or verdict.notes or 'complete'}",
        )
        for host, verdicts in found.items()
        for verdict in verdicts
    ]


def as_dicts(checks: list[Check]) -> list[dict[str, Any]]:
    return [asdict(c) for c in checks]
