"""``ferryman notify …`` (notification channels of a space) and ``ferryman hook-secret``."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape

from ferryman.cli.client import Client
from ferryman.cli.output import console, pairs, show

notify_app = typer.Typer(
    help="Notification channels: email, IM robots, webhooks.", no_args_is_help=True
)
SpaceOpt = Annotated[str, typer.Option("--space", help="Space name or id.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@notify_app.command("list")
def channel_list(space: SpaceOpt = "default", as_json: JsonOpt = False) -> None:
    rows = Client().get(f"/spaces/{space}/channels")
    show(rows, ["id", "name", "kind", "language", "events", "projects", "envs", "enabled"], as_json)


@notify_app.command("set")
def channel_set(
    name: str,
    kind: Annotated[
        str, typer.Option("--kind", help="email, dingtalk, wecom, feishu, slack, webhook")
    ],
    setting: Annotated[
        list[str] | None,
        typer.Option(
            "--setting",
            help="KEY=VALUE (url, secret, host, port, tls, user, password, from); repeatable",
        ),
    ] = None,
    to: Annotated[
        list[str] | None, typer.Option("--to", help="Email recipient; repeatable.")
    ] = None,
    event: Annotated[list[str] | None, typer.Option("--event", help="Only these events.")] = None,
    project: Annotated[list[str] | None, typer.Option("--project", help="Only these.")] = None,
    env: Annotated[list[str] | None, typer.Option("--env", help="Only these.")] = None,
    language: Annotated[str, typer.Option("--language", help="en or zh_CN")] = "en",
    disabled: Annotated[bool, typer.Option("--disabled")] = False,
    space: SpaceOpt = "default",
) -> None:
    """Create or replace a channel (masters). Secrets are stored encrypted, never shown."""
    values: dict[str, Any] = dict(pairs(setting, "--setting"))
    if "port" in values:
        values["port"] = int(values["port"])
    if to:
        values["to"] = to
    body = {
        "kind": kind,
        "settings": values,
        "language": language,
        "events": event or [],
        "projects": project or [],
        "envs": env or [],
        "enabled": not disabled,
    }
    made = Client().put(f"/spaces/{space}/channels/{name}", body)
    console.print(f"channel {escape(made['name'])} (#{made['id']}) saved")


@notify_app.command("test")
def channel_test(channel_id: int) -> None:
    data = Client().post(f"/channels/{channel_id}/test")
    console.print(
        f"test message queued (delivery #{data['delivery']}); "
        f"see `ferryman notify deliveries {channel_id}`"
    )


@notify_app.command("deliveries")
def channel_deliveries(channel_id: int, as_json: JsonOpt = False) -> None:
    rows = Client().get(f"/channels/{channel_id}/deliveries")
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        return
    show(rows, ["id", "event", "title", "status", "attempts", "sent_at"])
    for row in rows:
        for attempt in row["history"]:
            if not attempt["ok"]:
                console.print(
                    f"  #{row['id']} {attempt['at']}: {escape(attempt['error'])}", highlight=False
                )


@notify_app.command("rm")
def channel_rm(channel_id: int) -> None:
    Client().delete(f"/channels/{channel_id}")
    console.print(f"channel #{channel_id} removed")


def hook_secret(
    project: str,
    secret: Annotated[str, typer.Option("--secret", help="Your own; default: generated.")] = "",
) -> None:
    """Set a project's git webhook secret (masters); printed once. Point GitLab, Gitea or
    GitHub at /api/v1/hooks/{gitlab|gitea|github}/PROJECT with it."""
    data = Client().put(f"/projects/{project}/hook-secret", {"secret": secret})
    console.print(data["secret"], markup=False, highlight=False)
