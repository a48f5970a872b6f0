"""``ferryman apply``, ``projects``, ``copy``, ``refs``, ``check`` and ``project delete``:
projects and their configuration, through the REST API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape

from ferryman.cli.client import Client
from ferryman.cli.options import EnvOpt, JsonOpt, ProjectArg, SpaceFilter
from ferryman.cli.output import console, print_json, show
from ferryman.errors import ConfigError


def apply(
    file: Annotated[
        Path, typer.Option("-f", "--file", help="The project YAML file.", metavar="FILE")
    ],
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Say what would change (or that nothing would), writing nothing.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create or update a project from its YAML file."""
    data = _read_project(file)
    client = Client()
    if dry_run:
        plan = client.post("/projects", data, params={"dry_run": "true"})
        if as_json:
            print_json(plan)
        else:
            _print_plan(plan)
        return
    result = client.post("/projects", data)
    if as_json:
        print_json(result)
        return
    verb = "created" if result["created"] else "updated"
    console.print(
        f"{verb} project {escape(result['name'])} "
        f"(environments: {', '.join(result['environments'])})"
    )


def _print_plan(plan: dict[str, Any]) -> None:
    name = f"{plan['space']}:{plan['name']}"
    if plan["created"]:
        console.print(
            f"would create project {escape(name)} "
            f"(environments: {', '.join(plan['environments'])})",
            highlight=False,
        )
        return
    if not plan["changes"]:
        console.print(f"project {escape(name)}: unchanged", highlight=False)
        return
    console.print(f"would update project {escape(name)}:", highlight=False)
    for change in plan["changes"]:
        before, after = change["before"], change["after"]
        mark = "+" if before is None else "-" if after is None else "~"
        shown = (
            _value(after)
            if before is None
            else f"{_value(before)} (removed)"
            if after is None
            else f"{_value(before)} → {_value(after)}"
        )
        console.print(f"  {mark} {escape(change['path'])}: {escape(shown)}", highlight=False)


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _read_project(file: Path) -> Any:
    """The project file as data, checked locally with the schema the server applies (fail
    early, same messages)."""
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {file}: {exc.strerror}") from None
    import yaml

    from ferryman.config.project import load_project_yaml  # pydantic: only when applying

    load_project_yaml(text, str(file))
    return yaml.safe_load(text)


def projects(
    space: SpaceFilter = None,
    as_json: JsonOpt = False,
) -> None:
    """List projects."""
    rows = Client().get("/projects", params={"space": space} if space else {})
    show(rows, ["id", "space", "name", "display_name", "repo", "environments"], as_json)


def copy(
    project: ProjectArg,
    name: Annotated[str, typer.Argument(help="The copy's name.", metavar="NAME")],
    space: Annotated[
        str | None, typer.Option(help="Target space (default: the same).", metavar="SPACE")
    ] = None,
) -> None:
    """Copy PROJECT's configuration as NAME, in its space or another one you master."""
    data = Client().post(f"/projects/{project}/copy", {"name": name, "space": space})
    console.print(f"copied to {escape(data['space'])}:{escape(data['name'])} (#{data['id']})")


def refs(
    project: ProjectArg,
    branch: Annotated[
        str | None,
        typer.Option(help="Whose commits to list (default branch when omitted).", metavar="BRANCH"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Branches, tags (newest first) and recent commits, read from the repository."""
    data = Client().get(f"/projects/{project}/refs", params={"branch": branch} if branch else {})
    if as_json:
        show(data, as_json=True)
        return
    show(data["branches"], ["name", "commit", "date"])
    show(data["tags"], ["name", "commit", "date"])
    show(data["commits"], ["id", "author", "date", "message"])


def check(project: ProjectArg, env: EnvOpt, as_json: JsonOpt = False) -> None:
    """Check SSH, host keys, directories, tools and the repository; one line per check.

    The exit status is 1 when any check fails."""
    data = Client().post(f"/projects/{project}/envs/{env}/check")
    if as_json:
        print_json(data)
    for row in [] if as_json else data["checks"]:
        mark = "[green]ok  [/]" if row["ok"] else "[red]FAIL[/]"
        detail = f" — {escape(row['detail'])}" if row["detail"] else ""
        console.print(
            f"{mark} {escape(row['host'])}: {escape(row['check'])}{detail}", highlight=False
        )
    if not data["ok"]:
        raise typer.Exit(1)


def schema() -> None:
    """Print the JSON Schema of the project file (for editors' completion and checks).

    It is generated from the model `apply` validates with. For VS Code's YAML extension:
    `ferryman schema > ferryman.schema.json`, then `# yaml-language-server:
    $schema=ferryman.schema.json` at the top of the project file."""
    from ferryman.config.project import json_schema

    print_json(json_schema())


project_app = typer.Typer(help="One project: delete it.", no_args_is_help=True)


@project_app.command("delete")
def delete(
    project: ProjectArg,
    yes: Annotated[bool, typer.Option("--yes", help="Delete without asking.")] = False,
) -> None:
    """Delete PROJECT (masters); its releases stay on the hosts.

    Refused while one of its deploys is queued, running or paused. Its deploys, tickets and
    audit rows are kept; its open tickets are cancelled; the name can be applied again as a
    new project."""
    if not yes and not typer.confirm(
        f"Delete project {project}? Its releases stay on the hosts; it cannot be undone."
    ):
        raise typer.Exit(1)
    Client().delete(f"/projects/{quote(project, safe=':')}")
    console.print(f"deleted project {escape(project)}")
