"""Following a deploy from the CLI: log lines as they come, and a live table of stages with
hosts done / total. Exit status: 0 success, 1 failure."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ferryman.cli.client import Client

POLL = 0.5
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
    """Print logs until the deploy ends; returns the CLI exit status."""
    after = 0
    deploy = client.get(f"/deploys/{deploy_id}")
    use_live = live_table and console.is_terminal

    def drain() -> None:
        nonlocal after
        while True:
            page = client.get(f"/deploys/{deploy_id}/logs", params={"after": after})
            for entry in page["lines"]:
                console.print(_line(entry), highlight=False, markup=False)
            after = page["next"]
            if len(page["lines"]) < 1000:
                return

    if use_live:
        with Live(stage_table(deploy), console=console, refresh_per_second=4) as live:
            while True:
                drain()
                deploy = client.get(f"/deploys/{deploy_id}")
                live.update(Group(stage_table(deploy)))
                if deploy["status"] in ("success", "failed"):
                    drain()
                    break
                time.sleep(POLL)
    else:
        while True:
            drain()
            deploy = client.get(f"/deploys/{deploy_id}")
            if deploy["status"] in ("success", "failed"):
                drain()
                break
            time.sleep(POLL)
        console.print(stage_table(deploy))
    if deploy["status"] == "success":
        console.print(
            f"[green]{deploy['kind']} #{deploy_id} succeeded[/]: {escape(deploy['release'])}"
        )
        return 0
    message = (deploy.get("error") or {}).get("message", "failed")
    console.print(
        f"[red]{deploy['kind']} #{deploy_id} failed[/]: {escape(message)}", highlight=False
    )
    return 1
