"""``ferryman deploy``, ``rollback``, ``retry``, ``cancel``, ``logs`` and ``releases``: deploys
through the REST API, followed live with ``--wait``; ``--json`` prints the API's document."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, ClassVar

import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperCommand

from ferryman.cli.client import Client
from ferryman.cli.follow import exit_status, follow, stage_table, started, stream_lines
from ferryman.cli.options import (
    DeployIdArg,
    EnvFilter,
    EnvOpt,
    JsonOpt,
    LimitOpt,
    ProjectArg,
    ProjectFilter,
    SpaceFilter,
    WaitOpt,
)
from ferryman.cli.output import console, print_json, show
from ferryman.domain.statuses import DeployStatus
from ferryman.errors import ConfigError


def deploy(
    project: ProjectArg,
    env: EnvOpt,
    ref: Annotated[
        str | None,
        typer.Option("--ref", help="Branch, tag or commit (svn: path[@rev]).", metavar="REF"),
    ] = None,
    hosts: Annotated[
        str | None,
        typer.Option(help="Only these hosts, comma-separated.", metavar="HOST,..."),
    ] = None,
    at: Annotated[
        datetime | None,
        typer.Option("--at", help="Start no earlier than this (UTC, ISO 8601).", metavar="TIME"),
    ] = None,
    config_only: Annotated[
        bool,
        typer.Option(
            "--config-only", help="Ship the live release again with the current config files."
        ),
    ] = False,
    check_ref: Annotated[
        bool,
        typer.Option(
            "--check-ref",
            help="Refuse at once (exit 2) a REF the repository does not have, instead of "
            "queuing a deploy that fails later.",
        ),
    ] = False,
    wait: WaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Queue a deploy of REF to every host of an environment (or --hosts).

    With --config-only: a new release of what the hosts run now, carrying the current config
    files. `ferryman deploy show DEPLOY_ID` shows one deploy."""
    if bool(ref) == config_only:
        raise ConfigError("give --ref REF or --config-only (one of them)")
    body: dict[str, Any] = {"env": env, "ref": ref} if ref else {"env": env, "config_only": True}
    if at:
        body["not_before"] = at.isoformat()
    if hosts:
        body["hosts"] = [h.strip() for h in hosts.split(",") if h.strip()]
    if check_ref:
        body["check_ref"] = True
    client = Client()
    result = client.post(f"/projects/{project}/deploys", body)
    started(client, result, result["id"], f"deploy #{result['id']} queued", wait, as_json, console)


def rollback(
    project: ProjectArg,
    env: EnvOpt,
    to: Annotated[
        str | None,
        typer.Option("--to", help="Release name (default: the previous one).", metavar="RELEASE"),
    ] = None,
    emergency: Annotated[
        bool,
        typer.Option(
            "--emergency", help="Link switch only, every host at once, no hooks (masters)."
        ),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Allow a release marked bad.")] = False,
    force_migrations: Annotated[
        bool,
        typer.Option(
            "--force-migrations",
            help="Cross irreversible database migrations (masters; needs --reason).",
        ),
    ] = False,
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason", help="Why --force-migrations (audited, notified).", metavar="TEXT"
        ),
    ] = None,
    wait: WaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Switch every host back to the previous release (or --to RELEASE).

    Without --emergency a gray-released environment rolls back batch by batch with health
    checks. A rollback that would cross an irreversible database migration (``migrations:``)
    is refused, listing them, unless a master adds --force-migrations --reason TEXT."""
    client = Client()
    body: dict[str, object] = {"env": env, "to": to, "emergency": emergency, "force": force}
    if force_migrations or reason:
        body |= {"force_migrations": force_migrations, "reason": reason}
    result = client.post(f"/projects/{project}/rollbacks", body)
    started(
        client, result, result["id"], f"rollback #{result['id']} queued", wait, as_json, console
    )


def releases(
    project: ProjectArg,
    env: EnvOpt,
    as_json: JsonOpt = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Ask every host where it really points (drift) and check its releases "
            "against their manifests (damaged).",
        ),
    ] = False,
) -> None:
    """Which release is live on each host, and which are kept there.

    With --verify, hosts that differ from the records (or were changed by hand) are flagged,
    every release a host serves or keeps is checked against its manifest (files missing or
    changed make it damaged), and the exit status is 1 when any host drifted or holds a
    damaged release."""
    params = {"verify": "true"} if verify else {}
    data = Client().get(f"/projects/{project}/envs/{env}/releases", params=params)
    if as_json:
        print_json(data)
    else:
        table = Table("host", "live release", "kept", *(["drift", "damaged"] if verify else []))
        for row in data["hosts"]:
            cells = [escape(row["host"]), escape(row["live"] or "-"), str(len(row["releases"]))]
            if verify:
                cells.append(f"[red]{escape(row['drift'])}[/]" if row["drift"] else "ok")
                damaged = ", ".join(sorted(row.get("damaged") or {}))
                cells.append(f"[red]{escape(damaged)}[/]" if damaged else "ok")
            table.add_row(*cells)
        console.print(table)
        if data.get("bad"):
            console.print("marked bad (aborted rollouts): " + ", ".join(data["bad"]))
        crosses = data.get("rollback_crosses") or {}
        if crosses.get("blocked"):
            why = crosses.get("unknown") or ", ".join(crosses.get("irreversible") or [])
            console.print(
                f"[red]a rollback to {escape(crosses['release'])} crosses irreversible "
                f"migrations:[/] {escape(why)}",
                highlight=False,
                soft_wrap=True,
            )
        for row in data["hosts"] if verify else []:  # one line each: the reasons are long
            for label, key in (("[red]damaged[/]", "damaged"), ("note", "notes")):
                for name, text in sorted((row.get(key) or {}).items()):
                    console.print(
                        f"{label}: {escape(row['host'])} {escape(name)}: {escape(text)}",
                        highlight=False,
                        soft_wrap=True,
                    )
    if verify and any(row["drift"] or row.get("damaged") for row in data["hosts"]):
        raise typer.Exit(1)


def retry(
    deploy_id: DeployIdArg,
    failed_only: Annotated[
        bool, typer.Option("--failed-only", help="Only the hosts that failed.")
    ] = False,
    wait: WaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Deploy a failed deploy's commit again, reusing its build (no checkout, no build)."""
    client = Client()
    data = client.post(f"/deploys/{deploy_id}/retry", {"failed_only": failed_only})
    message = f"retry of #{deploy_id} queued as deploy #{data['id']}"
    started(client, data, data["id"], message, wait, as_json, console)


def cancel(
    deploy_id: DeployIdArg,
    reason: Annotated[
        str, typer.Option("--reason", help="Why (kept with the deploy).", metavar="TEXT")
    ] = "",
    as_json: JsonOpt = False,
) -> None:
    """Stop a deploy: a queued one never starts, a running one stops at its next safe point."""
    data = Client().post(f"/deploys/{deploy_id}/cancel", {"reason": reason})
    if as_json:
        print_json(data)
        return
    cancelled = data["status"] == DeployStatus.CANCELLED
    state = "cancelled" if cancelled else "stopping at the next safe point"
    console.print(f"{data['kind']} #{deploy_id}: {state}")


PAGE = 1000


def logs(
    deploy_id: DeployIdArg,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep following until the deploy ends.")
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="One JSON document: the whole log as one page (with --follow: one JSON "
            "line per log line, then the deploy as it ended).",
        ),
    ] = False,
) -> None:
    """Print a deploy's log (and follow it until it ends with --follow)."""
    client = Client()
    if follow_:
        if as_json:
            raise typer.Exit(_follow_json(client, deploy_id))
        raise typer.Exit(follow(client, deploy_id, console, live_table=False))
    after = 0
    every: list[dict[str, Any]] = []
    page: dict[str, Any] = {}
    while True:
        page = client.get(f"/deploys/{deploy_id}/log", params={"after": after, "limit": PAGE})
        if as_json:
            every += page["lines"]
        for entry in [] if as_json else page["lines"]:
            console.print(
                f"[cyan][{escape(entry['host'] or 'deploy')}][/] {escape(entry['text'])}",
                highlight=False,
            )
        if not page["more"]:
            break
        after = page["next"]
    if as_json:
        print_json({**page, "lines": every, "next": every[-1]["id"] if every else 0})


def _follow_json(client: Client, deploy_id: int) -> int:
    """``logs --follow --json``: JSON lines as they come (``{"id", "ts", "host", …}``), then
    the deploy as it ended — every line on stdout is one JSON document."""

    def line(entry: dict[str, Any]) -> None:
        print(json.dumps(entry, ensure_ascii=False), flush=True)

    final = stream_lines(client, deploy_id, line)
    print(json.dumps(final, ensure_ascii=False), flush=True)
    return exit_status(final)


DEPLOY_COLUMNS = ["id", "project", "env", "kind", "ref", "status", "requested_by", "created_at"]


def deploys(
    project: ProjectFilter = None,
    space: SpaceFilter = None,
    env: EnvFilter = None,
    status: Annotated[
        str | None,
        typer.Option(
            help="Only deploys in this state: queued, running, paused, success, failed, cancelled.",
            metavar="STATUS",
        ),
    ] = None,
    user: Annotated[
        str | None, typer.Option(help="Only deploys this user asked for.", metavar="USER")
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option(help="Only deploys created from this time on (UTC).", metavar="TIME"),
    ] = None,
    limit: LimitOpt = 20,
    as_json: JsonOpt = False,
) -> None:
    """Recent deploys, newest first (filter by project, environment, status, user)."""
    params: dict[str, Any] = {
        "project": project,
        "space": space,
        "env": env,
        "status": status,
        "user": user,
        "since": since.isoformat() if since else None,
        "limit": limit,
    }
    rows = Client().get("/deploys", params={k: v for k, v in params.items() if v is not None})
    show(rows, DEPLOY_COLUMNS, as_json)


def deploy_show(deploy_id: DeployIdArg, as_json: JsonOpt = False) -> None:
    """One deploy: what was asked, its stages, each host, how it ended."""
    data = Client().get(f"/deploys/{deploy_id}")
    if as_json:
        print_json(data)
        return
    summary = {k: data[k] for k in [*DEPLOY_COLUMNS[1:], "commit", "release", "ticket_id"]}
    summary |= {"started_at": data["started_at"], "finished_at": data["finished_at"]}
    show(summary)
    if data.get("stages"):
        console.print(stage_table(data))
    show(data.get("hosts") or [], ["host", "status", "previous_release", "error"])
    if data.get("error"):
        console.print(f"[red]error:[/] {escape(data['error'].get('message', ''))}")


class DeployCommand(TyperCommand):
    """``ferryman deploy PROJECT …`` that also answers ``ferryman deploy show DEPLOY_ID`` (as
    ``gh run view`` beside ``gh run``): a first argument ``show`` picks the subcommand. A
    project named ``show`` is still reachable as ``SPACE:show`` or by its id."""

    commands: ClassVar[dict[str, Any]] = {}

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        if args[:1] == ["show"]:
            sub = self.commands["show"]
            return sub.make_context(f"{info_name} show", args[1:], parent=parent, **extra)
        return super().make_context(info_name, args, parent=parent, **extra)


def _show_command() -> Any:
    single = typer.Typer(add_completion=False, rich_markup_mode=None)
    single.command()(deploy_show)
    return typer.main.get_command(single)


DeployCommand.commands = {"show": _show_command()}
