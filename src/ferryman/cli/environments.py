"""``ferryman env …``: REST clients for the environments of a space."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape

from ferryman.cli.client import Client
from ferryman.cli.options import DescriptionOpt, JsonOpt, SpaceFilter, SpaceOpt
from ferryman.cli.output import console, pairs, show

env_app = typer.Typer(help="Environments of a space.", no_args_is_help=True)


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
