"""``ferryman config …``: config files of a project environment (templates, overrides,
previews, history)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape

from ferryman.cli.client import Client
from ferryman.cli.options import EnvOpt, JsonOpt, ProjectArg
from ferryman.cli.output import console, pairs, show
from ferryman.domain.validate import is_digits
from ferryman.errors import ValidationError

config_app = typer.Typer(
    help="Config files shipped in every release (encrypted at rest, rendered per host).",
    no_args_is_help=True,
)
PathArg = Annotated[
    str, typer.Argument(help="The file's path in the release (e.g. .env).", metavar="PATH")
]
LabelOpt = Annotated[
    str | None, typer.Option("--label", help="Override for the servers with this label.")
]
HostOpt = Annotated[
    str | None, typer.Option("--host", help="Override for one host (server name or address).")
]


def _base(project: str, env: str) -> str:
    return f"/projects/{quote(project, safe='')}/envs/{quote(env, safe='')}/config"


def _scope(label: str | None, host: str | None) -> str | None:
    if label and host:
        raise ValidationError("give --label or --host, not both")
    if label:
        return f"label:{label}"
    if host:
        return f"host:{host}"
    return None


def _read(file: Path | None) -> str | None:
    if file is None:
        return None
    if str(file) == "-":
        return sys.stdin.read()
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"cannot read {file}: {exc}") from None


@config_app.command("set")
def config_set(
    project: ProjectArg,
    path: PathArg,
    env: EnvOpt,
    file: Annotated[
        Path | None, typer.Option("--file", help="The content ('-' reads standard input).")
    ] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="Octal mode (default 0600).")] = None,
    label: LabelOpt = None,
    host: HostOpt = None,
    keys: Annotated[
        list[str] | None,
        typer.Option("--set", help="KEY=VALUE line to set in an override (repeatable)."),
    ] = None,
) -> None:
    """Set a config file's content and/or mode (masters), or an override.

    With --label or --host, set that group's override instead: its own content (--file)
    and/or key values (--set)."""
    content = _read(file)
    scope = _scope(label, host)
    client = Client()
    if scope is None:
        if keys:
            raise ValidationError("--set belongs to an override: add --label or --host")
        if content is None and mode is None:
            raise ValidationError("give --file (the content) and/or --mode")
        data = client.put(
            f"{_base(project, env)}/files/{quote(path)}", {"content": content, "mode": mode}
        )
    else:
        if mode is not None:
            raise ValidationError("--mode is the file's, not an override's: drop --label/--host")
        body: dict[str, Any] = {"content": content, "set": pairs(keys, "--set")}
        data = client.put(
            f"{_base(project, env)}/overrides/{quote(scope, safe='')}/{quote(path)}", body
        )
    console.print(
        f"{escape(path)} of {escape(project)} {escape(env)} is now version {data['version']}"
        + (f" ({escape(scope)} override)" if scope else "")
    )


@config_app.command("show")
def config_show(
    project: ProjectArg,
    env: EnvOpt,
    path: Annotated[str | None, typer.Argument(help="A file; without it, list them.")] = None,
    host: Annotated[
        str | None,
        typer.Option("--host", help="Render what this host gets (secret values as ***)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the config files, or show one (template and overrides).

    With --host: the effective rendered file(s) that host gets."""
    client = Client()
    base = _base(project, env)
    if host is not None:
        params = {"host": host} | ({"path": path} if path else {})
        rows = client.get(f"{base}/preview", params=params)
        if as_json:
            show(rows, as_json=True)
            return
        for row in rows:
            shaped = f" ← {', '.join(row['overrides'])}" if row["overrides"] else ""
            console.rule(f"{escape(row['host'])}: {escape(row['path'])} {row['mode']}{shaped}")
            console.print(row["content"], markup=False, highlight=False, soft_wrap=True)
            if row["at_deploy"]:
                console.print(f"filled in at deploy: {', '.join(row['at_deploy'])}")
            if row["unknown"]:
                console.print(f"[yellow]not known, left as written: {', '.join(row['unknown'])}")
        return
    if path is None:
        rows = client.get(base)
        show(rows, ["path", "mode", "version", "overrides", "updated_by", "missing"], as_json)
        return
    data = client.get(f"{base}/files/{quote(path)}")
    if as_json:
        show(data, as_json=True)
        return
    console.rule(f"{escape(path)} {data['mode']} v{data['version']} by {data['updated_by']}")
    console.print(data["content"], markup=False, highlight=False, soft_wrap=True)
    for override in data["overrides"]:
        console.rule(f"override {escape(override['scope'])}")
        if override["content"] is not None:
            console.print(override["content"], markup=False, highlight=False, soft_wrap=True)
        for key, value in override["set"].items():
            console.print(f"set {key}={value}", markup=False, highlight=False)


@config_app.command("history")
def config_history(
    project: ProjectArg,
    path: PathArg,
    env: EnvOpt,
    diff: Annotated[
        str | None,
        typer.Option("--diff", help="Show the diff OLD..NEW (versions), or 'last'."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every version of a config file: who, when, what changed; --diff shows one change."""
    client = Client()
    base = _base(project, env)
    if diff is None:
        rows = client.get(f"{base}/history/{quote(path)}")
        show(rows, ["version", "change", "mode", "changed_by", "changed_at"], as_json)
        return
    params: dict[str, str] = {}
    if diff != "last":
        old, sep, new = diff.partition("..")
        if not sep or not is_digits(old) or not is_digits(new):
            raise ValidationError("--diff: give OLD..NEW (like 2..3) or 'last'")
        params = {"from": old, "to": new}
    data = client.get(f"{base}/diff/{quote(path)}", params=params)
    if as_json:
        show(data, as_json=True)
        return
    console.print(data["diff"] or "(no difference)", markup=False, highlight=False)


@config_app.command("rm")
def config_rm(
    project: ProjectArg, path: PathArg, env: EnvOpt, label: LabelOpt = None, host: HostOpt = None
) -> None:
    """Remove a config file (its history is kept), or with --label/--host one override."""
    scope = _scope(label, host)
    client = Client()
    if scope is None:
        client.delete(f"{_base(project, env)}/files/{quote(path)}")
        console.print(f"{escape(path)} removed; the next release will not have it")
    else:
        client.delete(f"{_base(project, env)}/overrides/{quote(scope, safe='')}/{quote(path)}")
        console.print(f"override {escape(scope)} of {escape(path)} removed")
