"""``ferryman group``: user groups (用户组). Superusers make groups and choose their members;
a space's owners add a group to the space with a role, which its members then hold there."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer
from rich.markup import escape

from ferryman.cli.client import Client
from ferryman.cli.options import DescriptionOpt, JsonOpt, SpaceArg, UserArg
from ferryman.cli.output import console, show

group_app = typer.Typer(help="User groups: members follow the group's role in a space.")

GroupArg = Annotated[str, typer.Argument(help="The group's name (or id).", metavar="GROUP")]
RoleOpt = Annotated[str, typer.Option(help="owner, master, developer or reporter.", metavar="ROLE")]


def _q(text: str) -> str:
    return quote(text, safe="")


@group_app.command("list")
def group_list(as_json: JsonOpt = False) -> None:
    """Every group, its members and the spaces it is in."""
    rows = Client().get("/groups")
    if as_json:
        show(rows, as_json=True)
        return
    for row in rows:
        row["spaces"] = [f"{s['space']}={s['role']}" for s in row["spaces"]]
    show(rows, ["name", "display_name", "members", "spaces"])


@group_app.command("create")
def group_create(
    name: Annotated[str, typer.Argument(help="The new group's name.", metavar="NAME")],
    display_name: Annotated[str, typer.Option(help="Its name in any script.", metavar="TEXT")] = "",
    description: DescriptionOpt = "",
) -> None:
    """Create a group (superusers)."""
    body = {"name": name, "display_name": display_name, "description": description}
    data = Client().post("/groups", body)
    console.print(f"created group {escape(data['name'])} (#{data['id']})")


@group_app.command("rename")
def group_rename(
    group: GroupArg,
    new_name: Annotated[str, typer.Argument(help="Its new name.", metavar="NEW_NAME")],
) -> None:
    """Rename a group (superusers): its members and spaces follow it."""
    data = Client().patch(f"/groups/{_q(group)}", {"name": new_name})
    console.print(f"renamed group {escape(group)} to {escape(data['name'])}")


@group_app.command("set")
def group_set(
    group: GroupArg,
    display_name: Annotated[
        str | None, typer.Option(help="Its name in any script.", metavar="TEXT")
    ] = None,
    description: Annotated[str | None, typer.Option(help="What it is for.", metavar="TEXT")] = None,
) -> None:
    """Change a group's display name or description (superusers)."""
    body = {
        key: value
        for key, value in (("display_name", display_name), ("description", description))
        if value is not None
    }
    if not body:
        raise typer.BadParameter("give --display-name or --description")
    data = Client().patch(f"/groups/{_q(group)}", body)
    console.print(f"updated group {escape(data['name'])}")


@group_app.command("delete")
def group_delete(group: GroupArg) -> None:
    """Delete a group (superusers): its members lose its role in every space."""
    Client().delete(f"/groups/{_q(group)}")
    console.print(f"deleted group {escape(group)}")


@group_app.command("add-member")
def group_add_member(group: GroupArg, user: UserArg) -> None:
    """Add a user to a group (superusers)."""
    Client().put(f"/groups/{_q(group)}/members/{_q(user)}")
    console.print(f"{escape(user)} is in group {escape(group)}")


@group_app.command("remove-member")
def group_remove_member(group: GroupArg, user: UserArg) -> None:
    """Take a user out of a group (superusers): the group's roles leave with them."""
    Client().delete(f"/groups/{_q(group)}/members/{_q(user)}")
    console.print(f"{escape(user)} left group {escape(group)}")


@group_app.command("grant")
def group_grant(group: GroupArg, space: SpaceArg, role: RoleOpt) -> None:
    """Add GROUP to SPACE with a role, or change its role there (owners)."""
    data = Client().put(f"/spaces/{_q(space)}/groups/{_q(group)}", {"role": role})
    console.print(f"group {escape(data['group'])} is {data['role']} in {escape(space)}")


@group_app.command("revoke")
def group_revoke(group: GroupArg, space: SpaceArg) -> None:
    """Remove GROUP from SPACE (owners): its members keep only their own roles there."""
    Client().delete(f"/spaces/{_q(space)}/groups/{_q(group)}")
    console.print(f"group {escape(group)} removed from {escape(space)}")
