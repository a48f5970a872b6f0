"""The ``ferryman`` command: the application and where each command lives.

Server-side commands (``migrate``, ``ssh-key``: ``cli/server.py``; ``serve``, ``worker``
and the other operations: ``cli/operations.py``;
``admin …``: ``cli/admin.py``) work on the local home and database directly. User commands are
thin clients of the REST API (``cli/client.py``), one module per subject: projects, deploys,
tickets, spaces, environments, servers, users (and tokens), secrets, groups, configs,
notify, rollout, agent, trust. Exit statuses: ``cli/exits.py`` (the README's table).
"""

from __future__ import annotations

import copy
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.markup import escape

from ferryman import __version__
from ferryman.cli import (
    admin,
    agent,
    client,
    configs,
    deploys,
    environments,
    groups,
    helptext,
    login,
    notify,
    operations,
    projects,
    promote,
    rollout,
    secrets,
    server,
    servers,
    spaces,
    summaries,
    tickets,
    trust,
    users,
)
from ferryman.cli.output import console, err
from ferryman.errors import FerrymanError

app = typer.Typer(
    help="Ferryman (摆渡人): self-hosted web deployment over SSH.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help is plain text: "[@rev]" is text, not markup
)
_state = {"debug": False}


def _print_version(value: bool) -> None:
    if value:
        console.print(__version__, highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            is_eager=True,
            callback=_print_version,
            expose_value=True,
        ),
    ] = False,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="The server to talk to (one you logged in to; default: FERRYMAN_URL, "
            "else the last login).",
            metavar="URL",
        ),
    ] = None,
) -> None:
    _state["debug"] = debug
    ctx.call_on_close(client.close_opened)  # the command's connections end with it
    if server:
        client.SELECTED["url"] = server


@app.command("version")
def version_command() -> None:
    """Print the version of this command (the server's is in /healthz and /docs)."""
    console.print(__version__, highlight=False)


# server side
operations.register(app)  # serve, worker and the other commands of cli/operations.py
app.command()(server.migrate)
app.command("ssh-key")(server.ssh_key)
app.add_typer(admin.admin_app, name="admin")

# user side (REST clients)
app.command()(login.login)
app.command()(login.logout)
app.command()(login.servers)
app.command()(projects.apply)
app.command()(projects.projects)
app.command()(projects.copy)
app.command()(projects.refs)
app.command()(projects.schema)
app.command(cls=deploys.DeployCommand)(deploys.deploy)  # and `deploy show ID`
app.command()(deploys.deploys)
app.command()(deploys.rollback)
app.command()(deploys.releases)
app.command()(deploys.retry)
app.command()(promote.promote)
app.command()(deploys.cancel)
app.command()(deploys.logs)
app.command()(projects.check)
app.add_typer(projects.project_app, name="project")
app.add_typer(spaces.space_app, name="space")
app.add_typer(groups.group_app, name="group")
app.add_typer(environments.env_app, name="env")
app.add_typer(servers.server_app, name="server")
app.add_typer(users.user_app, name="user")
app.add_typer(users.token_app, name="token")
app.add_typer(tickets.ticket_app, name="ticket")
app.add_typer(secrets.secret_app, name="secret")
app.add_typer(configs.config_app, name="config")
app.add_typer(agent.agent_app, name="agent")
notify.notify_app.command("summary")(summaries.summary)
app.add_typer(notify.notify_app, name="notify")
app.add_typer(rollout.rollout_app, name="rollout")
_ = trust  # importing it registers `server trust`, `space trust-repo`, `space ssh-key`
app.command("hook-secret")(notify.hook_secret)
app.command("audit")(tickets.audit)
app.command("stats")(tickets.stats)


def command(argv: Sequence[str] | None = None) -> Any:
    """The click command tree that ``ferryman`` runs (the help test walks it); typer brings
    its own copy of click, so this is typer's ``Command``.

    With ``argv`` (the arguments of a run), the groups of commands it does not name are built
    without their commands: they read the same in ``ferryman --help``, and building every
    command of every group (their parameters' types) costs each run more than the rest of
    its start-up together."""
    named = _named_group(argv) if argv is not None else None
    tree = typer.main.get_command(app if named is None else _shallow(app, keep=named))
    helptext.readable_metavars(tree)
    if not sys.stdout.isatty():  # help piped or saved: whole lines, no "…" (cli/output.py)
        tree.context_settings = {**tree.context_settings, "terminal_width": helptext.UNWRAPPED}
    return tree


def _named_group(argv: Sequence[str]) -> str | None:
    """The group a run names (``""``: none), or None when the whole tree is needed (shell
    completion, or a name that is not a group, which may be a typo of one)."""
    if any(name.startswith("_FERRYMAN_COMPLETE") for name in os.environ):
        return None
    words = iter(argv)
    for word in words:
        if word == "--server":
            next(words, None)
        elif not word.startswith("-"):
            groups = {info.name for info in app.registered_groups}
            return word if word in groups else "" if word in _command_names() else None
    return ""


def _command_names() -> set[str]:
    """The names of the commands (not groups) at the top, as typer names them."""
    names = set()
    for info in app.registered_commands:
        if info.name:
            names.add(info.name)
        elif info.callback is not None:
            names.add(typer.main.get_command_name(info.callback.__name__))
    return names


def _shallow(whole: typer.Typer, keep: str) -> typer.Typer:
    """``whole`` whose groups but ``keep`` have no commands (their help and options stay)."""
    tree = copy.copy(whole)
    tree.registered_groups = []
    for info in whole.registered_groups:
        if info.name != keep and info.typer_instance is not None:
            empty = copy.copy(info.typer_instance)
            empty.registered_commands, empty.registered_groups = [], []
            info = copy.copy(info)
            info.typer_instance = empty
        tree.registered_groups.append(info)
    return tree


def main() -> None:
    try:
        command(sys.argv[1:])(prog_name="ferryman")
    except FerrymanError as exc:
        if _state["debug"]:
            traceback.print_exc()
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
