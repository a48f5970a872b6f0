"""Following a deploy from the CLI: log lines as they come, and a live table of stages with
hosts done / total. Exit status: 0 success, 1 failure."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import websockets
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ferryman.cli.client import Client
from ferryman.errors import FerrymanError

RECONNECTS = 5
STYLE = {"success": "green", "failed": "red", "running": "yellow", "queued": "dim"}


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


def follow(client: Client, deploy_id: int, console: Console, live_table: bool = True) -> int:
    """Print the log until the deploy ends (the server's WebSocket stream, which replays and
    then follows; reconnects from the last line on a dropped connection); returns the CLI exit
    status: 0 succeeded, 1 failed or cancelled."""
    deploy = client.get(f"/deploys/{deploy_id}")
    cursor = 0
    use_live = live_table and console.is_terminal
    live = Live(stage_table(deploy), console=console, refresh_per_second=4) if use_live else None

    def on_message(message: dict[str, Any]) -> None:
        nonlocal cursor, deploy
        if message["type"] == "line":
            console.print(_line(message), highlight=False, markup=False)
            cursor = message["id"]
        elif message["type"] == "deploy":
            deploy = message["deploy"]
            if live is not None:
                live.update(Group(stage_table(deploy)))

    if live is not None:
        live.start()
    try:
        for attempt in range(RECONNECTS):
            try:
                asyncio.run(_stream(client, deploy_id, cursor, on_message))
                break
            except (OSError, websockets.exceptions.WebSocketException) as exc:
                if attempt == RECONNECTS - 1:
                    raise FerrymanError(
                        f"lost the log stream of deploy #{deploy_id}: {exc}"
                    ) from None
                time.sleep(1)
        deploy = client.get(f"/deploys/{deploy_id}")
    finally:
        if live is not None:
            live.update(Group(stage_table(deploy)))
            live.stop()
    if not use_live:
        console.print(stage_table(deploy))
    if deploy["status"] == "success":
        console.print(
            f"[green]{deploy['kind']} #{deploy_id} succeeded[/]: {escape(deploy['release'])}"
        )
        return 0
    if deploy["status"] == "paused":
        console.print(
            f"[yellow]{deploy['kind']} #{deploy_id} paused[/] after its canary: "
            f"`ferryman rollout continue {deploy_id}` or `ferryman rollout abort {deploy_id}`"
        )
        return 0
    message = (deploy.get("error") or {}).get("message", deploy["status"])
    word = "cancelled" if deploy["status"] == "cancelled" else "failed"
    console.print(
        f"[red]{deploy['kind']} #{deploy_id} {word}[/]: {escape(message)}", highlight=False
    )
    return 1


async def _stream(
    client: Client,
    deploy_id: int,
    after: int,
    on_message: Callable[[dict[str, Any]], None],
) -> None:
    url = client.url.replace("http", "ws", 1) + f"/api/v1/deploys/{deploy_id}/stream?after={after}"
    headers = {"Authorization": f"Bearer {client.token}"} if client.token else {}
    async with websockets.connect(
        url, additional_headers=headers, open_timeout=10, max_size=2**22
    ) as ws:
        async for raw in ws:
            message = json.loads(raw)
            on_message(message)
            if message["type"] == "end":
                return
    if ws.close_code and ws.close_code >= 4000:
        raise _refused(ws.close_code, ws.close_reason or "refused")


def _refused(code: int, reason: str) -> FerrymanError:
    from ferryman.cli.client import error_for_status

    return error_for_status(code - 4000, reason)
