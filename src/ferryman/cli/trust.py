"""``ferryman server trust NAME`` and ``ferryman space trust-repo HOST``: pin SSH host keys
after comparing their fingerprints with what you know; ``ferryman space ssh-key``: the space's
own public key. REST clients like the rest of the user commands."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from ferryman.cli.client import Client
from ferryman.cli.options import JsonOpt, SpaceArg, SpaceOpt
from ferryman.cli.output import console, show
from ferryman.cli.servers import server_app
from ferryman.cli.spaces import space_app
from ferryman.domain.validate import is_digits
from ferryman.errors import NotFound, RemoteError

FingerprintOpt = Annotated[
    str, typer.Option("--fingerprint", help="The SHA256:… fingerprint you checked out of band.")
]
KeyOpt = Annotated[str, typer.Option("--key", help="Pin this public key line instead.")]
YesOpt = Annotated[bool, typer.Option("--yes", help="Pin what is presented without asking.")]


def _server_id(client: Client, name: str, space: str) -> int:
    if is_digits(name):
        return int(name)
    rows: list[dict[str, Any]] = client.get("/servers", params={"space": space})
    for row in rows:
        if row["name"] == name:
            return int(row["id"])
    raise NotFound(f"space {space} has no server {name!r}")


@server_app.command("trust")
def server_trust(
    name: Annotated[str, typer.Argument(help="Server name or id.", metavar="SERVER")],
    space: SpaceOpt = "default",
    fingerprint: FingerprintOpt = "",
    key: KeyOpt = "",
    yes: YesOpt = False,
) -> None:
    """Show the host key a server presents and pin it: deploys then accept that key only."""
    client = Client()
    server_id = _server_id(client, name, space)
    if not fingerprint and not key:
        seen = client.get(f"/servers/{server_id}/host-key")
        if seen["error"]:
            raise RemoteError(seen["error"], host=seen["host"], stage="trust")
        console.print(
            f"{escape(seen['host'])} presents {seen['algorithm']} {seen['presented']}",
            highlight=False,
        )
        if seen["pinned"]:
            console.print(f"pinned now: {', '.join(seen['pinned'])}", highlight=False)
        if not yes and not typer.confirm("Is this the host's key (checked on the host)?"):
            raise typer.Exit(1)
        fingerprint = seen["presented"]
    data = client.post(f"/servers/{server_id}/host-key", {"fingerprint": fingerprint, "key": key})
    console.print(
        f"pinned {', '.join(data['host_key'])} for {escape(data['name'])}", highlight=False
    )


@space_app.command("trust-repo")
def space_trust_repo(
    host: Annotated[str, typer.Argument(help="Repository host: address[:port].")],
    space: SpaceOpt = "default",
    fingerprint: FingerprintOpt = "",
    key: KeyOpt = "",
    yes: YesOpt = False,
) -> None:
    """Pin a repository host's key for the space's checkouts (git or svn over SSH)."""
    client = Client()
    path = f"/spaces/{space}/repo-hosts"
    if not fingerprint and not key:
        seen = client.post(path, {"host": host})[0]
        console.print(
            f"{escape(seen['host'])} presents {seen['algorithm']} {seen['presented']}",
            highlight=False,
        )
        if not yes and not typer.confirm("Is this the repository host's key?"):
            raise typer.Exit(1)
        fingerprint = seen["presented"]
    rows = client.post(path, {"host": host, "fingerprint": fingerprint, "key": key})
    show(rows, ["host", "algorithm", "fingerprint"])


@space_app.command("repo-hosts")
def space_repo_hosts(space: SpaceOpt = "default", as_json: JsonOpt = False) -> None:
    """Repository host keys pinned for the space."""
    show(Client().get(f"/spaces/{space}/repo-hosts"), ["host", "algorithm", "fingerprint"], as_json)


@space_app.command("ssh-key")
def space_ssh_key(space: SpaceArg) -> None:
    """The space's own public key: add it to authorized_keys on the space's servers."""
    data = Client().get(f"/spaces/{space}/ssh-key")
    console.print(data["public_key"], highlight=False, soft_wrap=True)
