"""``ferryman notify summary``: a space's scheduled summary (报表汇总), a REST client."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from ferryman.cli.client import Client
from ferryman.cli.options import JsonOpt, SpaceOpt
from ferryman.cli.output import console, print_json
from ferryman.errors import ValidationError


def summary(
    space: SpaceOpt = "default",
    channel: Annotated[
        str | None,
        typer.Option("--channel", help="Send it to this channel of the space.", metavar="NAME"),
    ] = None,
    period: Annotated[
        str, typer.Option("--period", help="daily or weekly (UTC days, ISO weeks).")
    ] = "daily",
    off: Annotated[bool, typer.Option("--off", help="Stop sending it.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show or set the space's scheduled summary (报表汇总).

    With --channel: send the space's deploys, failures, rollbacks, durations and top failing
    projects of every day or ISO week (UTC) to that channel; --off stops it."""
    client = Client()
    path = f"/spaces/{space}/summary"
    data: dict[str, Any]
    if channel is None and not off:
        data = client.get(path)
    else:
        current = client.get(path)
        target = channel or current.get("channel")
        if not target:
            raise ValidationError("give --channel NAME (the space has no summary to turn off)")
        body = {"channel": target, "period": period, "enabled": not off}
        if off and channel is None:
            body["period"] = current.get("period") or period
        data = client.put(path, body)
    if as_json:
        print_json(data)
        return
    if not data["enabled"]:
        console.print(f"space {escape(data['space'])}: no scheduled summary", highlight=False)
        return
    console.print(
        f"space {escape(data['space'])}: {data['period']} summary to {escape(data['channel'])}"
        + (f", last sent for {data['last_period']}" if data.get("last_sent_at") else ""),
        highlight=False,
    )
