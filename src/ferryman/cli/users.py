"""``ferryman user|token …``: REST clients for users, your password and your personal
tokens."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from ferryman.cli.client import Client
from ferryman.cli.options import JsonOpt, UserArg
from ferryman.cli.output import console, show

user_app = typer.Typer(
    help="Users (superusers manage them) and your password.", no_args_is_help=True
)
token_app = typer.Typer(help="Your personal API tokens.", no_args_is_help=True)


@user_app.command("list")
def user_list(as_json: JsonOpt = False) -> None:
    """Users: all of them for superusers, else those who share a space with you."""
    show(Client().get("/users"), ["id", "username", "is_active", "is_superuser", "email"], as_json)


@user_app.command("create")
def user_create(
    name: Annotated[str, typer.Argument(help="The new user's name.", metavar="NAME")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            help="The password (asked when not given).",
        ),
    ],
    superuser: Annotated[bool, typer.Option("--superuser", help="Make a superuser.")] = False,
    email: Annotated[
        str, typer.Option(help="E-mail address (for notifications).", metavar="EMAIL")
    ] = "",
) -> None:
    """Create a user (superusers)."""
    body = {"username": name, "password": password, "is_superuser": superuser, "email": email}
    data = Client().post("/users", body)
    console.print(f"created user {escape(data['username'])} (#{data['id']})")


@user_app.command("disable")
def user_disable(name: UserArg) -> None:
    """Disable a user; their tokens stop working at once."""
    Client().patch(f"/users/{name}", {"is_active": False})
    console.print(f"disabled {escape(name)}")


@user_app.command("enable")
def user_enable(name: UserArg) -> None:
    """Enable a disabled user (superusers)."""
    Client().patch(f"/users/{name}", {"is_active": True})
    console.print(f"enabled {escape(name)}")


@user_app.command("passwd")
def user_passwd(
    old: Annotated[
        str,
        typer.Option(
            "--old",
            prompt="Current password",
            hide_input=True,
            help="Your current password (asked when not given).",
        ),
    ],
    new: Annotated[
        str,
        typer.Option(
            "--new",
            prompt="New password",
            hide_input=True,
            confirmation_prompt=True,
            help="The new password (asked when not given).",
        ),
    ],
) -> None:
    """Change your own password."""
    Client().post("/me/password", {"old_password": old, "new_password": new})
    console.print("password changed")


@token_app.command("list")
def token_list(as_json: JsonOpt = False) -> None:
    """Your tokens: name, scopes, expiry, last use (never the secret)."""
    rows = Client().get("/tokens")
    show(rows, ["id", "name", "scopes", "expires_at", "last_used_at"], as_json)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="A name to recognise it by.", metavar="NAME")],
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help="read or write; repeatable.", metavar="SCOPE"),
    ] = None,
    expires_days: Annotated[
        int | None,
        typer.Option("--expires-days", help="Expire after this many days.", metavar="DAYS"),
    ] = None,
) -> None:
    """Create a personal token; it is printed once."""
    body = {"name": name, "scopes": scope or ["read", "write"], "expires_in_days": expires_days}
    data = Client().post("/tokens", body)
    console.print(data["token"], highlight=False, soft_wrap=True)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[
        int, typer.Argument(help="The token's id (see `token list`).", metavar="TOKEN_ID")
    ],
) -> None:
    """Revoke one of your tokens; it stops working at once."""
    Client().delete(f"/tokens/{token_id}")
    console.print(f"revoked token #{token_id}")
