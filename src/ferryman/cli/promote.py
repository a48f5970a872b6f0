"""``ferryman promote DEPLOY_ID --to ENV``: a ticket for the next environment from a
successful deploy (the same commit), and what it would change there."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from ferryman.cli.client import Client
from ferryman.cli.options import DeployIdArg, DescriptionOpt, JsonOpt
from ferryman.cli.output import console, print_json
from ferryman.cli.tickets import print_preview


def promote(
    deploy_id: DeployIdArg,
    to: Annotated[str, typer.Option("--to", help="The environment to promote to.", metavar="ENV")],
    title: Annotated[
        str, typer.Option("--title", help="What it ships, for the approver.", metavar="TEXT")
    ] = "",
    description: DescriptionOpt = "",
    draft: Annotated[bool, typer.Option("--draft", help="Keep it a draft.")] = False,
    preview: Annotated[
        bool, typer.Option("--preview", help="Also show the commits and files it ships there.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Make a ticket for ENV from a successful deploy (QA → approval → production).

    The ticket carries exactly that deploy's commit, for every host of ENV, and waits for
    approval where ENV needs it; --preview shows what it would change there."""
    client = Client()
    body: dict[str, Any] = {"env": to, "title": title, "description": description, "draft": draft}
    ticket = client.post(f"/deploys/{deploy_id}/promote", body)
    shown = client.get(f"/tickets/{ticket['id']}/preview") if preview else None
    if as_json:
        print_json({"ticket": ticket, "preview": shown} if preview else ticket)
        return
    console.print(
        f"ticket #{ticket['id']} {ticket['status']}: deploy #{deploy_id}'s commit "
        f"{ticket['commit'][:12]} to {escape(ticket['env'])}",
        highlight=False,
    )
    if shown is not None:
        print_preview(shown)
