"""Server-side commands: ``migrate`` and ``ssh-key`` work on the local home and database
directly (no REST API); ``serve`` and ``worker`` are in ``cli/operations.py``."""

from __future__ import annotations

from typing import Annotated

import typer

from ferryman.cli.home import server_home
from ferryman.cli.output import console, err


def migrate() -> None:
    """Bring the database schema to this version (run after upgrading Ferryman)."""
    from ferryman.bootstrap import prepare_home
    from ferryman.config.settings import load_settings

    settings = load_settings()
    db = prepare_home(settings)
    err.print(f"database {redact(db.url)} is up to date")


def ssh_key(
    space: Annotated[
        str | None,
        typer.Option("--space", help="A space's own key (default: the server's).", metavar="SPACE"),
    ] = None,
    create_home: Annotated[
        bool,
        typer.Option(
            "--create-home", help="Create FERRYMAN_HOME (and the key) when it does not exist."
        ),
    ] = False,
) -> None:
    """Print the server's public SSH key, or a space's own key.

    The server's key (the default space's) is created by the first `ferryman serve`. Run on
    the server, with its FERRYMAN_HOME; `ferryman space ssh-key` asks a running server."""
    from ferryman.bootstrap import ensure_ssh_key

    settings = server_home(create_home)
    public, created = ensure_ssh_key(settings)
    if created:
        err.print(f"created the server's SSH key {public}")
    if space is not None:
        from ferryman.bootstrap import prepare_home
        from ferryman.keys import public_key
        from ferryman.services.audit import SYSTEM
        from ferryman.services.host_keys import space_key

        space_id, uses_server_key, _name = space_key(prepare_home(settings), SYSTEM, space)
        console.print(public_key(settings, space_id, uses_server_key), highlight=False)
        return
    console.print(public.read_text().strip(), highlight=False, soft_wrap=True)


def redact(url: str) -> str:
    """A database URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
