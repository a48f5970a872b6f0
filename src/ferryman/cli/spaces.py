"""``ferryman space …``: REST clients for spaces, their members and limits."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from ferryman.cli.client import Client
from ferryman.cli.options import DescriptionOpt, JsonOpt, SpaceArg, UserArg
from ferryman.cli.output import console, show

space_app = typer.Typer(help="Spaces (tenants) and their members.", no_args_is_help=True)


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
