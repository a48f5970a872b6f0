"""``ferryman server …``: REST clients for the servers of a space (``server trust`` is in
``cli/trust.py``)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer
from rich.markup import escape

from ferryman.cli.client import Client
from ferryman.cli.options import JsonOpt, SpaceFilter, SpaceOpt
from ferryman.cli.output import console, show

server_app = typer.Typer(help="Servers of a space.", no_args_is_help=True)


@server_app.command("list")
def server_list(
    space: SpaceFilter = None,
    label: Annotated[
        str | None, typer.Option(help="Only servers with this label.", metavar="LABEL")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The servers you can see: address, labels, environments, pinned host key."""
    params = {k: v for k, v in {"space": space, "label": label}.items() if v}
    rows = Client().get("/servers", params=params)
    show(rows, ["id", "name", "host", "labels", "environments", "host_key"], as_json)


@server_app.command("add")
def server_add(
    name: Annotated[str, typer.Argument(help="The server's name in Ferryman.", metavar="NAME")],
    address: Annotated[str, typer.Argument(help="Host name or IP address.", metavar="ADDRESS")],
    space: SpaceOpt = "default",
    port: Annotated[int, typer.Option(help="SSH port.", metavar="PORT")] = 22,
    user: Annotated[
        str, typer.Option(help="SSH user (default: the project's).", metavar="USER")
    ] = "",
    label: Annotated[
        list[str] | None,
        typer.Option("--label", help="A label projects can select; repeatable.", metavar="LABEL"),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env",
            help="An environment it serves (its approval applies); repeatable.",
            metavar="ENV",
        ),
    ] = None,
) -> None:
    """Add a server to a space's inventory (masters); pin its host key with `server trust`."""
    body = {
        "space": space,
        "name": name,
        "address": address,
        "port": port,
        "user": user,
        "labels": label or [],
        "environments": env or [],
    }
    data = Client().post("/servers", body)
    console.print(f"added server {escape(data['name'])} (#{data['id']}, {escape(data['host'])})")


@server_app.command("remove")
def server_remove(
    server: Annotated[
        str,
        typer.Argument(help="The server's name (or its id, see `server list`).", metavar="SERVER"),
    ],
    space: SpaceOpt = "default",
) -> None:
    """Remove a server from its space's inventory (masters)."""
    if server.isdigit():  # the first release's address, deprecated in the API
        Client().delete(f"/servers/{server}")
        console.print(f"removed server #{server}")
        return
    Client().delete(f"/spaces/{quote(space, safe='')}/servers/{quote(server, safe='')}")
    console.print(f"removed server {escape(server)} from {escape(space)}")
