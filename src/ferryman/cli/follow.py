"""Following a deploy from the CLI: log lines as they come, and a live table of stages with
hosts done / total, until the deploy ends. Exit status (``cli/exits.py``): 0 success, 1 failure
or cancelled, 3 a gray release paused; 2 when the server refuses (no such deploy, no access);
130 on Ctrl-C, which stops the following and not the deploy (it says how to follow it again or
cancel it).

A follower outlives its server: a restart, a network error, a proxy's 502 or a database outage
(503) only make it reconnect (``cli/backoff.py``: 0.5 s doubling to 5 s, no fixed count, one
line on stderr) and resume from the id of the last line it printed, so no line is shown twice
or skipped. Only a refusal (401, 403, 404) stops it early."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ferryman.cli import exits
from ferryman.cli.backoff import Backoff, describe, is_refusal, refuses
from ferryman.cli.client import Client, error_for_status
from ferryman.cli.output import err, print_json
from ferryman.domain.statuses import DeployStatus, StageStatus
from ferryman.errors import FerrymanError, PermissionDenied

if TYPE_CHECKING:  # the stream's libraries load when a command follows, not at start-up
    from rich.console import Console
    from rich.live import Live

PROTOCOL = 2  # the console stream's: log lines in pages (docs/api.md, "The live console")
# a stage's status (``StageStatus``; a stage is never queued, ``lost`` stays plain)
STYLE = {StageStatus.SUCCESS: "green", StageStatus.FAILED: "red", StageStatus.RUNNING: "yellow"}


def stage_table(deploy: dict[str, Any]) -> Table:
    table = Table(
        title=f"{deploy['kind']} #{deploy['id']} {deploy['project']} {deploy['env']}"
        f" — {deploy['status']}",
        title_justify="left",
        expand=False,
    )
    table.add_column("stage")
    table.add_column("hosts", justify="right")
    table.add_column("status")
    table.add_column("time", justify="right")
    for stage in deploy.get("stages") or []:
        total = stage.get("total") or 0
        hosts = (
            f"{stage['done']}/{total}"
            + (f" ({stage['failed']} failed)" if stage.get("failed") else "")
            if total
            else "-"
        )
        seconds = f"{stage['duration']:.2f}s" if stage.get("duration") is not None else ""
        table.add_row(
            stage["name"],
            hosts,
            Text(stage["status"], style=STYLE.get(stage["status"], "")),
            seconds,
        )
    return table


def _line(entry: dict[str, Any]) -> Text:
    prefix = entry["host"] or "deploy"
    text = Text(f"[{prefix}] ", style="cyan")
    text.append(entry["text"])
    return text


def follow(
    client: Client,
    deploy_id: int,
    console: Console,
    live_table: bool = True,
    as_json: bool = False,
) -> int:
    """Print the log until the deploy ends, with a live table of its stages on a terminal;
    returns the CLI exit status (``exit_status``). A refusal raises its ``FerrymanError``.

    With ``as_json`` the log, the stage table and the outcome go to stderr, and stdout gets
    one JSON document: the deploy as it ended (``GET /deploys/{id}``: status, hosts,
    release, error)."""
    from rich.console import Group
    from rich.live import Live

    if as_json:
        console, live_table = err, False
    use_live = live_table and console.is_terminal
    live: Live | None = None

    def on_line(entry: dict[str, Any]) -> None:
        console.print(_line(entry), highlight=False, markup=False)

    def on_deploy(deploy: dict[str, Any]) -> None:
        nonlocal live
        if not use_live:
            return
        if live is None:
            live = Live(stage_table(deploy), console=console, refresh_per_second=4)
            live.start()
        else:
            live.update(Group(stage_table(deploy)))

    try:
        deploy = stream_lines(client, deploy_id, on_line, on_deploy)
    except KeyboardInterrupt:
        if live is not None:
            live.stop()
        _still_running(deploy_id)
        raise
    if live is not None:
        live.update(Group(stage_table(deploy)))
        live.stop()
    else:
        console.print(stage_table(deploy))
    code = _outcome(console, deploy)
    if as_json:
        print_json(deploy)
    return code


def stream_lines(
    client: Client,
    deploy_id: int,
    on_line: Callable[[dict[str, Any]], None],
    on_deploy: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Call ``on_line`` for each log line until the deploy ends (the server's WebSocket
    stream, which replays from a cursor and then follows), reconnecting from the last line
    seen whenever the connection is lost, and ``on_deploy`` whenever its state changes;
    returns the deploy as it ended (or paused)."""
    import asyncio

    import websockets

    backoff = Backoff(client.url, err)
    deploy = _patiently(backoff, lambda: client.get(f"/deploys/{deploy_id}"))
    if on_deploy is not None:
        on_deploy(deploy)
    cursor = 0

    def on_message(message: dict[str, Any]) -> None:
        nonlocal cursor
        backoff.succeeded()
        for entry in log_lines(message):
            if entry["id"] <= cursor:
                continue  # already printed (never expected: the stream starts after the cursor)
            on_line(entry)
            cursor = entry["id"]
        if message["type"] == "deploy" and on_deploy is not None:
            on_deploy(message["deploy"])

    while True:
        try:
            if asyncio.run(_stream(client, deploy_id, cursor, on_message)):
                break
            problem = "the stream closed before the end"
        except (OSError, websockets.exceptions.WebSocketException) as exc:
            problem = describe(exc)
        backoff.failed(problem)
    result: dict[str, Any] = _patiently(backoff, lambda: client.get(f"/deploys/{deploy_id}"))
    return result


def log_lines(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The log lines a stream message carries, in order: a page of them (protocol 2's
    ``lines``), one (``line``: a server older than protocol 2), or none."""
    if message["type"] == "lines":
        lines: list[dict[str, Any]] = message["lines"]
        return lines
    if message["type"] == "line":
        return [{k: v for k, v in message.items() if k != "type"}]
    return []


def _still_running(deploy_id: int) -> None:
    """Ctrl-C stops the watching, not the deploy: say so, and how to go on."""
    err.print(
        f"stopped following; deploy #{deploy_id} goes on on the server. Follow it again with "
        f"`ferryman logs {deploy_id} --follow`, see it with `ferryman deploy show {deploy_id}`, "
        f"stop it with `ferryman cancel {deploy_id}`",
        style="yellow",
        highlight=False,
        markup=False,
    )


def _patiently(backoff: Backoff, call: Callable[[], Any]) -> Any:
    """``call()`` (a REST request) until the server answers it; a refusal is raised."""
    while True:
        try:
            result = call()
        except FerrymanError as exc:
            if is_refusal(exc):
                raise
            backoff.failed(describe(exc))
            continue
        backoff.succeeded()
        return result


def exit_status(deploy: dict[str, Any]) -> int:
    """0 succeeded, 3 paused (a gray release waiting for someone), 1 failed or cancelled."""
    return exits.of_deploy(deploy["status"])


def _outcome(console: Console, deploy: dict[str, Any]) -> int:
    """Say how the deploy ended; its exit status."""
    deploy_id = deploy["id"]
    if deploy["status"] == DeployStatus.SUCCESS:
        console.print(
            f"[green]{deploy['kind']} #{deploy_id} succeeded[/]: {escape(deploy['release'])}"
        )
    elif deploy["status"] == DeployStatus.PAUSED:
        console.print(
            f"[yellow]{deploy['kind']} #{deploy_id} paused[/]: "
            f"`ferryman rollout continue {deploy_id}` or `ferryman rollout abort {deploy_id}`",
            highlight=False,
        )
    else:
        message = (deploy.get("error") or {}).get("message", deploy["status"])
        word = "cancelled" if deploy["status"] == DeployStatus.CANCELLED else "failed"
        console.print(
            f"[red]{deploy['kind']} #{deploy_id} {word}[/]: {escape(message)}", highlight=False
        )
    return exit_status(deploy)


async def _stream(
    client: Client,
    deploy_id: int,
    after: int,
    on_message: Callable[[dict[str, Any]], None],
) -> bool:
    """Follow one connection: True once the server said ``end`` (every line was sent and the
    deploy ended or paused), False when it closed before. A refusal raises its error; a lost
    connection raises ``OSError`` or a ``WebSocketException``."""
    import websockets

    # protocol 2: lines in pages (a server that predates it ignores the flag and sends a
    # message per line, which is read as well)
    url = (
        client.url.replace("http", "ws", 1)
        + f"/api/v1/deploys/{deploy_id}/stream?after={after}&protocol={PROTOCOL}"
    )
    headers = {"Authorization": f"Bearer {client.token}"} if client.token else {}
    try:
        async with websockets.connect(
            url, additional_headers=headers, open_timeout=10, max_size=2**22
        ) as ws:
            async for raw in ws:
                message = json.loads(raw)
                on_message(message)
                if message["type"] == "end":
                    return True
    except websockets.exceptions.InvalidStatus as exc:
        status = exc.response.status_code
        if refuses(status):
            raise error_for_status(
                status, f"the server refused the stream (HTTP {status})"
            ) from None
        raise
    except websockets.exceptions.ConnectionClosed as exc:
        if exc.rcvd is not None:
            _raise_if_refused(exc.rcvd.code, exc.rcvd.reason)
        raise
    return False


def _raise_if_refused(code: int, reason: str) -> None:
    """Close codes that are an answer: 4000 + an HTTP 4xx status (the server refused the
    stream), 1008 (access withdrawn while streaming)."""
    if code == 1008:
        raise PermissionDenied(reason or "access to this deploy was withdrawn")
    if 4000 <= code < 5000 and refuses(code - 4000):
        raise error_for_status(code - 4000, reason or "refused")


def started(
    client: Client,
    result: dict[str, Any],
    deploy_id: int,
    message: str,
    wait: bool,
    as_json: bool,
    console: Console,
) -> None:
    """After a request that queued deploy ``deploy_id`` (``result``: the API's answer): say
    so, and with ``wait`` follow it to its end (the exit status is its outcome). With
    ``as_json`` stdout gets one document — ``result``, or with ``wait`` the deploy as it
    ended — and the words go to stderr."""
    (err if as_json else console).print(message, highlight=False)
    if wait:
        raise typer.Exit(follow(client, deploy_id, console, as_json=as_json))
    if as_json:
        print_json(result)
