"""Arguments and options that many commands share, each with its help line and a readable
metavar (``PROJECT``, ``ENV``, ``ID``), so the same thing reads the same everywhere."""

from __future__ import annotations

from typing import Annotated

import typer

ProjectArg = Annotated[
    str, typer.Argument(help="Project: id, name, or SPACE:NAME.", metavar="PROJECT")
]
DeployIdArg = Annotated[int, typer.Argument(help="The deploy's id (#N).", metavar="DEPLOY_ID")]
TicketIdArg = Annotated[int, typer.Argument(help="The ticket's id (#N).", metavar="TICKET_ID")]
EnvOpt = Annotated[str, typer.Option("--env", help="Environment name.", metavar="ENV")]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON document (the API's) on stdout.")
]
WaitOpt = Annotated[
    bool,
    typer.Option(
        "--wait",
        help="Follow the deploy until it ends; the exit status is its outcome.",
    ),
]
SpaceOpt = Annotated[str, typer.Option("--space", help="Space name or id.", metavar="SPACE")]
SpaceArg = Annotated[str, typer.Argument(help="Space name or id.", metavar="SPACE")]
UserArg = Annotated[str, typer.Argument(help="User name.", metavar="USER")]
ChannelArg = Annotated[
    str,
    typer.Argument(help="The channel's name (or its id, see `notify list`).", metavar="CHANNEL"),
]
SpaceFilter = Annotated[
    str | None, typer.Option("--space", help="Only this space (name or id).", metavar="SPACE")
]
ProjectFilter = Annotated[
    str | None,
    typer.Option(
        "--project", help="Only this project (id, name or SPACE:NAME).", metavar="PROJECT"
    ),
]
EnvFilter = Annotated[
    str | None, typer.Option("--env", help="Only this environment.", metavar="ENV")
]
LimitOpt = Annotated[int, typer.Option("--limit", help="At most this many rows.", metavar="N")]
ReasonOpt = Annotated[
    str,
    typer.Option("--reason", help="Why (kept in the record and the audit log).", metavar="TEXT"),
]
DescriptionOpt = Annotated[
    str, typer.Option("--description", help="A description for people.", metavar="TEXT")
]
