"""``ferryman agent …``: pull-mode hosts — tokens and the one-liners that install the poller."""

from __future__ import annotations

import base64
from typing import Annotated

import typer
from rich.markup import escape

from ferryman.cli.client import Client
from ferryman.cli.output import console, err

agent_app = typer.Typer(help="Pull-mode hosts: tokens and install scripts.", no_args_is_help=True)
SpaceOpt = Annotated[str, typer.Option("--space", help="Space name or id.")]
HostOpt = Annotated[str, typer.Option("--host", help="The host's name, as the project lists it.")]


def _one_liner(script: str) -> str:
    encoded = base64.b64encode(script.encode()).decode()
    return f"echo {encoded} | base64 -d | sudo bash"


@agent_app.command("register")
def register(host: HostOpt, space: SpaceOpt = "default") -> None:
    """A new token for a host (its earlier tokens stop working); printed once."""
    data = Client().post(f"/spaces/{space}/agents", {"host": host})
    console.print(data["token"], markup=False, highlight=False)
    if data.get("signing_key"):  # stdout stays the token alone, for scripts
        err.print(f"signing key (optional HMAC): {data['signing_key']}", markup=False)


@agent_app.command("revoke")
def revoke(host: HostOpt, space: SpaceOpt = "default") -> None:
    """Revoke a pull-mode host's token: its poller stops getting deploys."""
    Client().delete(f"/spaces/{space}/agents/{host}")
    console.print(f"the token of {escape(host)} no longer works")


@agent_app.command("install-script")
def install_script(
    host: HostOpt,
    space: SpaceOpt = "default",
    user: Annotated[str, typer.Option("--user", help="The deploy user on the host.")] = "root",
    every: Annotated[int, typer.Option("--every", help="Seconds between polls (timer).")] = 10,
    cron: Annotated[bool, typer.Option("--cron", help="A cron line instead of a timer.")] = False,
    server: Annotated[
        str | None, typer.Option("--server", help="The URL hosts reach the server at.")
    ] = None,
    plain: Annotated[bool, typer.Option("--plain", help="The script, not a one-liner.")] = False,
) -> None:
    """Register a host and print the one-liner that installs its poller.

    The host gets a new token; run the one-liner as root on the host."""
    from ferryman.commands import agent_script  # the project schema: only when printing one
    from ferryman.domain import validate

    validate.username(user)  # it goes into a root script: a plain user name, or nothing
    client = Client()
    data = client.post(f"/spaces/{space}/agents", {"host": host})
    script = agent_script.install_script(
        server or client.url, data["host"], data["token"], user=user, every=every, cron=cron
    )
    console.print(
        script if plain else _one_liner(script), markup=False, highlight=False, soft_wrap=True
    )


@agent_app.command("uninstall-script")
def uninstall_script(
    host: HostOpt,
    space: SpaceOpt = "default",
    plain: Annotated[bool, typer.Option("--plain", help="The script, not a one-liner.")] = False,
) -> None:
    """Revoke the host's token and print the one-liner that removes the poller."""
    from ferryman.commands import agent_script

    Client().delete(f"/spaces/{space}/agents/{host}")
    script = agent_script.uninstall_script()
    console.print(
        script if plain else _one_liner(script), markup=False, highlight=False, soft_wrap=True
    )
