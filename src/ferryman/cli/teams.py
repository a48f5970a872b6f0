"""``ferryman space|env|server|user|token …``: REST clients for spaces, members, environments,
servers, users and personal tokens."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape

from ferryman.cli.client import Client
from ferryman.cli.options import (
    DescriptionOpt,
    EnvOpt,
    JsonOpt,
    ProjectArg,
    SpaceArg,
    SpaceFilter,
    SpaceOpt,
    UserArg,
)
from ferryman.cli.output import console, pairs, show

space_app = typer.Typer(help="Spaces (tenants) and their members.", no_args_is_help=True)
env_app = typer.Typer(help="Environments of a space.", no_args_is_help=True)
server_app = typer.Typer(help="Servers of a space.", no_args_is_help=True)
user_app = typer.Typer(
    help="Users (superusers manage them) and your password.", no_args_is_help=True
)
token_app = typer.Typer(help="Your personal API tokens.", no_args_is_help=True)
secret_app = typer.Typer(
    help="Secret variables of a project environment (values encrypted, write-only).",
    no_args_is_help=True,
)


# --- spaces -----------------------------------------------------------------------------


@space_app.command("list")
def space_list(as_json: JsonOpt = False) -> None:
    """The spaces you belong to (all, for superusers)."""
    columns = ["id", "name", "display_name", "role", "is_active", "description"]
    show(Client().get("/spaces"), columns, as_json)


@space_app.command("create")
def space_create(
    name: Annotated[str, typer.Argument(help="The new space's name.", metavar="NAME")],
    owner: Annotated[
        str | None, typer.Option(help="User to make the owner.", metavar="USER")
    ] = None,
    description: DescriptionOpt = "",
    display_name: Annotated[
        str,
        typer.Option(help="Its name in any script, shown beside NAME.", metavar="TEXT"),
    ] = "",
) -> None:
    """Create a space (superusers) with the seeded environments."""
    body = {"name": name, "owner": owner, "description": description}
    data = Client().post("/spaces", body | {"display_name": display_name})
    console.print(f"created space {escape(data['name'])} (#{data['id']})")


@space_app.command("rename")
def space_rename(
    space: Annotated[str, typer.Argument(help="The space's name.", metavar="SPACE")],
    display_name: Annotated[
        str, typer.Argument(help="Its name in any script ('' to show SPACE).", metavar="TEXT")
    ],
) -> None:
    """Set the space's display name (owners); its NAME, in paths and URLs, stays."""
    data = Client().patch(f"/spaces/{space}", {"display_name": display_name})
    console.print(f"{escape(data['name'])}: {escape(data['display_name'] or data['name'])}")


@space_app.command("members")
def space_members(space: SpaceArg, as_json: JsonOpt = False) -> None:
    """The members of a space and their roles, directly or through groups."""
    rows = Client().get(f"/spaces/{space}/members")
    if not as_json:
        for row in rows:
            row["via"] = [f"{g['group']} ({g['role']})" for g in row.get("groups") or []]
    show(rows, ["username", "role", "own_role", "via", "is_active"], as_json)


@space_app.command("add-member")
def space_add_member(
    space: SpaceArg,
    user: UserArg,
    role: Annotated[
        str, typer.Option(help="owner, master, developer or reporter.", metavar="ROLE")
    ],
) -> None:
    """Add a member, or change the role of one."""
    data = Client().post(f"/spaces/{space}/members", {"user": user, "role": role})
    console.print(f"{escape(data['username'])} is {data['role']} in {escape(space)}")


@space_app.command("remove-member")
def space_remove_member(space: SpaceArg, user: UserArg) -> None:
    """Remove a member from a space (their per-project roles there go too)."""
    Client().delete(f"/spaces/{space}/members/{user}")
    console.print(f"removed {escape(user)} from {escape(space)}")


@space_app.command("limits")
def space_limits(
    space: SpaceArg,
    max_running: Annotated[
        int | None,
        typer.Option("--max-running", help="Deploys of the space running at once.", metavar="N"),
    ] = None,
    max_task_timeout: Annotated[
        str | None,
        typer.Option(
            "--max-task-timeout",
            help="Longest task timeout (3600, 30m, 1h).",
            metavar="DURATION",
        ),
    ] = None,
    allow_local_repos: Annotated[
        bool | None,
        typer.Option(
            "--allow-local-repos/--no-allow-local-repos",
            help="Allow file:// and local-path repositories (superusers).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show or change a space's limits.

    Owners may lower them; raising them or allowing local repositories needs a superuser."""
    body: dict[str, Any] = {}
    if max_running is not None:
        body["max_running"] = max_running
    if max_task_timeout is not None:
        body["max_task_timeout"] = max_task_timeout
    if allow_local_repos is not None:
        body["allow_local_repos"] = allow_local_repos
    client = Client()
    data = client.patch(f"/spaces/{space}/limits", body) if body else client.get(f"/spaces/{space}")
    limits = {k: data[k] for k in ("max_running", "max_task_timeout", "allow_local_repos")}
    if as_json:
        show(limits, as_json=True)
        return
    console.print(
        f"space {escape(data['name'])}: at most {limits['max_running']} running, "
        f"task timeout up to {limits['max_task_timeout']:g}s, local repositories "
        + ("allowed" if limits["allow_local_repos"] else "refused")
    )


# --- environments -------------------------------------------------------------------------


@env_app.command("list")
def env_list(space: SpaceFilter = None, as_json: JsonOpt = False) -> None:
    """The environments you can see, with their approval flag and variables."""
    params = {"space": space} if space else {}
    rows = Client().get("/environments", params=params)
    show(rows, ["id", "space_id", "name", "requires_approval", "variables"], as_json)


@env_app.command("create")
def env_create(
    name: Annotated[str, typer.Argument(help="The environment's name.", metavar="NAME")],
    space: SpaceOpt = "default",
    approval: Annotated[bool, typer.Option("--approval", help="Deploys need approval.")] = False,
    var: Annotated[
        list[str] | None,
        typer.Option("--var", help="A variable, KEY=VALUE; repeatable.", metavar="KEY=VALUE"),
    ] = None,
    description: DescriptionOpt = "",
) -> None:
    """Create an environment in a space (masters)."""
    body = {
        "space": space,
        "name": name,
        "requires_approval": approval,
        "variables": pairs(var, "--var"),
        "description": description,
    }
    data = Client().post("/environments", body)
    console.print(f"created environment {escape(data['name'])} (#{data['id']})")


@env_app.command("set")
def env_set(
    name: Annotated[str, typer.Argument(help="The environment's name.", metavar="NAME")],
    space: SpaceOpt = "default",
    approval: Annotated[
        bool | None, typer.Option("--approval/--no-approval", help="Deploys need approval.")
    ] = None,
    var: Annotated[
        list[str] | None,
        typer.Option("--var", help="KEY=VALUE (replaces all); repeatable.", metavar="KEY=VALUE"),
    ] = None,
) -> None:
    """Change an environment's approval flag or variables."""
    client = Client()
    body: dict[str, Any] = {}
    if approval is not None:
        body["requires_approval"] = approval
    if var is not None:
        body["variables"] = pairs(var, "--var")
    data = client.patch(
        f"/spaces/{quote(space, safe='')}/environments/{quote(name, safe='')}", body
    )
    flag = "needs approval" if data["requires_approval"] else "needs no approval"
    console.print(f"environment {escape(data['name'])} {flag}")


# --- servers ------------------------------------------------------------------------------


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


# --- users and tokens ---------------------------------------------------------------------


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


# --- secrets ------------------------------------------------------------------------------


SecretName = Annotated[str, typer.Argument(help="The secret's name.", metavar="NAME")]


def _secrets(project: str, env: str) -> str:
    return f"/projects/{project}/envs/{env}/secrets"


@secret_app.command("set")
def secret_set(
    project: ProjectArg,
    name: Annotated[str, typer.Argument(help="The secret's name.", metavar="NAME")],
    env: EnvOpt,
    value: Annotated[
        str | None,
        typer.Option(help="The value; without it, read from standard input.", metavar="VALUE"),
    ] = None,
) -> None:
    """Set a secret (masters). Prefer stdin: a value on the command line lands in shell history."""
    import sys

    text = value if value is not None else sys.stdin.read().rstrip("\n")
    Client().put(f"{_secrets(project, env)}/{name}", {"value": text})
    console.print(f"secret {escape(name)} set for {escape(project)} {escape(env)}")


@secret_app.command("list")
def secret_list(project: ProjectArg, env: EnvOpt, as_json: JsonOpt = False) -> None:
    """Names only: values are never listed."""
    rows = Client().get(_secrets(project, env))
    show(rows, ["name", "value", "updated_by", "updated_at", "versions"], as_json)


@secret_app.command("show")
def secret_show(project: ProjectArg, name: SecretName, env: EnvOpt) -> None:
    """Print a secret's value (masters; the read is audited)."""
    data = Client().get(f"{_secrets(project, env)}/{name}/value")
    console.print(data["value"], highlight=False, markup=False, soft_wrap=True)


@secret_app.command("rm")
def secret_rm(project: ProjectArg, name: SecretName, env: EnvOpt) -> None:
    """Remove a secret (masters); deploys that need it fail until it is set again."""
    Client().delete(f"{_secrets(project, env)}/{name}")
    console.print(f"secret {escape(name)} removed")
