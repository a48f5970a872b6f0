"""``ferryman login``, ``logout`` and ``servers``: tokens for the other commands, one per
server URL (staging and production side by side); ``--server`` or ``FERRYMAN_URL`` picks one
for a command, the last login is the default (``cli/client.py``)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from ferryman.cli.client import (
    Client,
    forget_credentials,
    save_credentials,
    stored_credentials,
)
from ferryman.cli.options import JsonOpt
from ferryman.cli.output import console, show
from ferryman.errors import NotFound


def login(
    server: Annotated[
        str, typer.Option(help="Server URL, e.g. http://ferryman:8080.", metavar="URL")
    ],
    username: Annotated[str, typer.Option(help="Your user name.", metavar="USER")],
    password: Annotated[
        str,
        typer.Option(prompt=True, hide_input=True, help="Your password (asked when not given)."),
    ],
) -> None:
    """Log in to a server and store a token for it, beside those of other servers.

    The server becomes the default; `--server URL` or FERRYMAN_URL picks another."""
    client = Client(url=server, token="")
    data = client.post("/auth/login", {"username": username, "password": password})
    path = save_credentials(server, data["token"], username)
    console.print(f"logged in to {escape(server)} as {escape(username)} (token saved in {path})")


def logout(
    server: Annotated[
        str | None,
        typer.Option(help="The server to forget (default: the default one).", metavar="URL"),
    ] = None,
) -> None:
    """Forget the token stored for a server.

    The server keeps it until it expires: revoke it with `ferryman token revoke` first to end
    it there too."""
    data = stored_credentials()
    url = server or data["default"]
    if not url or not forget_credentials(url):
        raise NotFound(f"not logged in to {url or 'any server'}")
    console.print(f"forgot the token for {escape(url)}", highlight=False)


def servers(as_json: JsonOpt = False) -> None:
    """The servers you are logged in to, as whom, and which is the default."""
    data = stored_credentials()
    rows = [
        {"url": url, "username": entry.get("username", ""), "default": url == data["default"]}
        for url, entry in sorted(data["servers"].items())
    ]
    show(rows, ["url", "username", "default"], as_json)
