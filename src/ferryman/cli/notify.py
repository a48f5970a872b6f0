"""``ferryman notify …`` (notification channels of a space) and ``ferryman hook-secret``."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape

from ferryman.cli.client import Client
from ferryman.cli.options import ChannelArg, JsonOpt, ProjectArg, SpaceOpt
from ferryman.cli.output import console, pairs, show

notify_app = typer.Typer(
    help="Notification channels: email, IM robots, webhooks.", no_args_is_help=True
)


@notify_app.command("list")
def channel_list(space: SpaceOpt = "default", as_json: JsonOpt = False) -> None:
    """A space's channels: kind, language, what they get, enabled."""
    rows = Client().get(f"/spaces/{space}/channels")
    show(rows, ["id", "name", "kind", "language", "events", "projects", "envs", "enabled"], as_json)


@notify_app.command("set")
def channel_set(
    name: Annotated[str, typer.Argument(help="The channel's name in the space.", metavar="NAME")],
    kind: Annotated[
        str,
        typer.Option(
            "--kind", help="email, dingtalk, wecom, feishu, slack or webhook.", metavar="KIND"
        ),
    ],
    setting: Annotated[
        list[str] | None,
        typer.Option(
            "--setting",
            help="KEY=VALUE (url, secret, host, port, tls, user, password, from); repeatable.",
            metavar="KEY=VALUE",
        ),
    ] = None,
    to: Annotated[
        list[str] | None,
        typer.Option("--to", help="E-mail recipient; repeatable.", metavar="ADDRESS"),
    ] = None,
    event: Annotated[
        list[str] | None,
        typer.Option("--event", help="Only this event; repeatable.", metavar="EVENT"),
    ] = None,
    project: Annotated[
        list[str] | None,
        typer.Option("--project", help="Only this project; repeatable.", metavar="PROJECT"),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option("--env", help="Only this environment; repeatable.", metavar="ENV"),
    ] = None,
    language: Annotated[
        str, typer.Option("--language", help="en or zh_CN.", metavar="LANG")
    ] = "en",
    disabled: Annotated[bool, typer.Option("--disabled", help="Save it switched off.")] = False,
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
def channel_test(channel: ChannelArg, space: SpaceOpt = "default") -> None:
    """Send a test message through a channel (queued; see its deliveries)."""
    data = Client().post(f"{_channel(channel, space)}/test")
    where = "" if channel.isdigit() or space == "default" else f" --space {space}"
    console.print(
        f"test message queued (delivery #{data['delivery']}); "
        f"see `ferryman notify deliveries {channel}{where}`",
        highlight=False,
    )


@notify_app.command("deliveries")
def channel_deliveries(
    channel: ChannelArg, space: SpaceOpt = "default", as_json: JsonOpt = False
) -> None:
    """A channel's deliveries, newest first, with every failed attempt."""
    rows = Client().get(f"{_channel(channel, space)}/deliveries")
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
def channel_rm(channel: ChannelArg, space: SpaceOpt = "default") -> None:
    """Remove a channel (masters)."""
    Client().delete(_channel(channel, space))
    shown = f"#{channel}" if channel.isdigit() else escape(channel)
    console.print(f"channel {shown} removed")


def _channel(channel: str, space: str) -> str:
    """A channel's address: by its space and name, or by its id (the first release's
    addresses, deprecated in the API: ids keep working until they go)."""
    if channel.isdigit():
        return f"/channels/{channel}"
    return f"/spaces/{quote(space, safe='')}/channels/{quote(channel, safe='')}"


def hook_secret(
    project: ProjectArg,
    secret: Annotated[
        str, typer.Option("--secret", help="Your own; default: generated.", metavar="SECRET")
    ] = "",
) -> None:
    """Set a project's git webhook secret (masters); it is printed once.

    Point GitLab, Gitea or GitHub at /api/v1/hooks/{gitlab|gitea|github}/PROJECT with it."""
    data = Client().put(f"/projects/{project}/hook-secret", {"secret": secret})
    console.print(data["secret"], markup=False, highlight=False)
