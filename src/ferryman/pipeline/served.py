"""``verify_served``: after its switch, a host proves it serves the new release.

From the deploy host, an HTTP GET of the environment's URL on the host's own address (``{HOST}``,
the only host the URL may name), no redirects followed, no proxy from the environment, each try
under ``timeout`` and read up to ``MAX_BODY`` bytes; the answer (its body, or one response
header) must be a 2xx holding the expected text (``{COMMIT}`` by default, filled from the task
variables). A host still serving what it served before — PHP's opcache or realpath cache, a
process that was not restarted, a cache in front — fails after ``attempts`` tries, and is then
handled like a failed health check (``pipeline/rollout.py``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
from urllib.parse import quote

import certifi
import httpx

from ferryman.commands.migrations import printable
from ferryman.config.served import VerifyServed
from ferryman.domain.manifest import VERSION_FILE
from ferryman.errors import FerrymanError, RolloutFailed
from ferryman.pipeline.context import Context
from ferryman.remote.executor import Target

STAGE = "verify_served"
MAX_BODY = 64 * 1024
_VERSION_BYTES = 4096


def _address(target: Target) -> str:
    return f"[{target.address}]" if ":" in target.address else target.address


def fill(text: str, values: dict[str, str], url: bool = False) -> str:
    """``text`` with each ``{NAME}`` of ``values`` replaced (percent-encoded in a URL). Plain
    text replacement: nothing here reaches a shell."""
    for name, value in values.items():
        text = text.replace("{" + name + "}", quote(value, safe="") if url else value)
    return text


async def release_commit(ctx: Context, target: Target, release: str) -> str:
    """The commit recorded in ``release``'s version file on ``target`` ("" when unknown)."""
    path = f"{ctx.layout.release(release)}/{VERSION_FILE}"
    try:
        result = await ctx.remote(
            target,
            ("head", "-c", str(_VERSION_BYTES), "--", path),
            stage=STAGE,
            check=False,
            quiet=True,
            shown=f"read {VERSION_FILE} of {release}",
        )
    except FerrymanError:
        return ""
    for line in result.stdout.splitlines():
        key, _, raw = line.partition(": ")
        if key == "commit":
            try:
                value = json.loads(raw)
            except ValueError:
                return ""
            return value if isinstance(value, str) else ""
    return ""


async def expected_values(ctx: Context, target: Target) -> dict[str, str]:
    """The variables for the URL and the expected text; a rollback (which builds nothing)
    takes the commit from the version file of the release it goes to."""
    values = ctx.variables(target.key)
    values["HOST"] = target.address
    if not values.get("COMMIT") and ctx.release:
        commit = await release_commit(ctx, target, ctx.release)
        values["COMMIT"], values["COMMIT_SHORT"] = commit, commit[:7]
    return values


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every check (building one costs ~0.2 s of CPU here: not per try)."""
    return ssl.create_default_context(cafile=certifi.where())


def client(check: VerifyServed) -> httpx.AsyncClient:
    """The client of one host's tries: no redirects, no proxy from the environment, and a
    new connection per try (a kept-alive one may reach a worker that is draining old code)."""
    return httpx.AsyncClient(
        timeout=check.timeout,
        follow_redirects=False,
        trust_env=False,
        verify=_tls(),
        limits=httpx.Limits(max_keepalive_connections=0),
    )


async def answer(
    check: VerifyServed, url: str, http: httpx.AsyncClient | None = None
) -> tuple[int, str]:
    """(status, the text looked at: the header's value or the body, at most ``MAX_BODY``),
    the whole try within ``timeout`` — httpx's own bounds each read, and a host dripping its
    answer a byte at a time would hold the deploy — else ``httpx.ReadTimeout``."""
    try:
        async with asyncio.timeout(check.timeout):
            if http is not None:
                return await _read(http, check, url)
            async with client(check) as own:
                return await _read(own, check, url)
    except TimeoutError:
        raise httpx.ReadTimeout(f"no whole answer within {check.timeout:g}s") from None


async def _read(http: httpx.AsyncClient, check: VerifyServed, url: str) -> tuple[int, str]:
    async with http.stream("GET", url) as response:
        if check.header is not None:
            return response.status_code, response.headers.get(check.header, "")
        body = b""
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) >= MAX_BODY:
                break
    return response.status_code, body[:MAX_BODY].decode("utf-8", "replace")


def verdict(status: int, text: str, expected: str, header: str | None) -> str | None:
    """None when the answer proves it, else what it showed instead."""
    where = f"header {header}" if header else "body"
    if not 200 <= status < 300:
        return f"status {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
    if expected in text:
        return None
    seen = printable(text.strip(), 80) or "(empty)"
    return f"{where} {seen!r} does not contain {expected!r}"


async def _old_release(ctx: Context, target: Target) -> tuple[str, str]:
    """(release name, commit) the host served before this deploy, when it was one of ours."""
    name = ctx.facts[target.key].live_release(ctx.layout) if target.key in ctx.facts else None
    if not name or name == ctx.release:
        return "", ""
    return name, await release_commit(ctx, target, name)


async def prove(ctx: Context, target: Target) -> None:
    """Ask ``target`` until it answers with the new release, or raise ``RolloutFailed``
    saying what it serves instead (``host X still serves <old> after N tries``)."""
    check = ctx.env.verify_served
    if check is None:
        return
    values = await expected_values(ctx, target)
    url = fill(check.http.replace("{HOST}", _address(target)), values, url=True)
    expected = fill(check.expect, values)
    what = f"verify_served {url}"
    if not expected.strip():
        raise RolloutFailed(
            f"{what}: the expected text {check.expect!r} is empty for this deploy",
            host=target.key,
            stage=STAGE,
            command=what,
        )
    why = ""
    last = ""
    async with client(check) as http:
        for attempt in range(1, check.attempts + 1):
            try:
                status, text = await answer(check, url, http)
            except httpx.HTTPError as exc:
                why = printable(f"{type(exc).__name__}: {exc}", 200)
            else:
                last = text
                found = verdict(status, text, expected, check.header)
                if found is None:
                    ctx.recorder.log(
                        f"{what}: serves {expected} (try {attempt})", host=target.key, stage=STAGE
                    )
                    return
                why = found
            ctx.recorder.log(
                f"{what}: {why} (try {attempt}/{check.attempts})", host=target.key, stage=STAGE
            )
            if attempt < check.attempts:
                await asyncio.sleep(check.interval)
    old, old_commit = await _old_release(ctx, target)
    if old and old_commit and old_commit in last:
        message = (
            f"host {target.key} still serves {old} (commit {old_commit[:12]}) after "
            f"{check.attempts} tries, not {ctx.release}"
        )
    else:
        message = f"host {target.key} does not serve {expected} after {check.attempts} tries: {why}"
    raise RolloutFailed(
        message + " (see verify_served in docs/config.md)",
        host=target.key,
        stage=STAGE,
        command=what,
    )
