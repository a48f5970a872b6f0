"""``ferryman secret …``: REST clients for a project environment's secret variables."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from ferryman.cli.client import Client
from ferryman.cli.options import EnvOpt, JsonOpt, ProjectArg
from ferryman.cli.output import console, show

secret_app = typer.Typer(
    help="Secret variables of a project environment (values encrypted, write-only).",
    no_args_is_help=True,
)


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
