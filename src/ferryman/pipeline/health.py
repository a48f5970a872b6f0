"""Health checks of one host after its switch: HTTP (from the deploy host), TCP, or a command
on the host; each retried ``retries`` times, ``interval`` apart, each try under ``timeout``."""

from __future__ import annotations

import asyncio

import httpx

from ferryman.commands import remote as cmd
from ferryman.config.project import HealthCheck
from ferryman.domain import validate
from ferryman.domain.variables import task_script
from ferryman.errors import FerrymanError
from ferryman.pipeline.context import Context
from ferryman.remote.executor import Target

STAGE = "health_check"


def _address(target: Target) -> str:
    return f"[{target.address}]" if ":" in target.address else target.address


def describe(check: HealthCheck, target: Target) -> str:
    return f"{check.kind} {check.target.replace('{HOST}', _address(target))}"


async def _try(ctx: Context, check: HealthCheck, target: Target) -> str | None:
    """None when the check passes, else why not."""
    problem = validate.health_check_problem(check.http, check.tcp)
    if problem:  # a config from before the rule: never probe anything but the host
        return problem
    if check.http:
        url = check.http.replace("{HOST}", _address(target))
        try:
            async with httpx.AsyncClient(timeout=check.timeout, follow_redirects=False) as http:
                response = await http.get(url)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
        if check.expect is not None and response.status_code != check.expect:
            return f"status {response.status_code}, expected {check.expect}"
        if check.expect is None and not 200 <= response.status_code < 300:
            return f"status {response.status_code}"
        if check.contains is not None and check.contains not in response.text:
            return f"the body does not contain {check.contains!r}"
        return None
    if check.tcp:
        host, _, port = check.tcp.replace("{HOST}", target.address).rpartition(":")
        try:
            _reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host.strip("[]"), int(port)), timeout=check.timeout
            )
        except (OSError, TimeoutError, ValueError) as exc:
            return f"cannot connect: {exc or type(exc).__name__}"[:300]
        writer.close()
        return None
    script = task_script(check.command or "", ctx.variables(target.key), where="target")
    try:  # the script (with the variables) on stdin, never on the host's command lines
        await ctx.remote(
            target,
            cmd.run_task(),
            stdin=cmd.task_input(script),
            stage=STAGE,
            timeout=check.timeout,
            shown=check.command,
        )
    except FerrymanError as exc:
        return exc.message[:300]
    return None


async def check_host(ctx: Context, target: Target) -> tuple[str, str] | None:
    """Run every check on ``target``; None when all pass, else (check, why) of the first
    that kept failing."""
    for check in ctx.env.health_check:
        what = describe(check, target)
        why: str | None = None
        for attempt in range(1, check.retries + 1):
            why = await _try(ctx, check, target)
            if why is None:
                ctx.recorder.log(f"{what}: ok", host=target.key, stage=STAGE)
                break
            ctx.recorder.log(
                f"{what}: {why} (try {attempt}/{check.retries})", host=target.key, stage=STAGE
            )
            if attempt < check.retries:
                await asyncio.sleep(check.interval)
        if why is not None:
            return what, f"{why} after {check.retries} tries"
    return None
