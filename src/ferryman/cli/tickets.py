"""``ferryman ticket …``, ``ferryman audit`` and ``ferryman stats``: REST clients."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from rich.markup import escape

from ferryman.cli.client import Client
from ferryman.cli.follow import follow, started
from ferryman.cli.options import (
    DescriptionOpt,
    EnvFilter,
    EnvOpt,
    JsonOpt,
    LimitOpt,
    ProjectArg,
    ProjectFilter,
    ReasonOpt,
    SpaceFilter,
    TicketIdArg,
    WaitOpt,
)
from ferryman.cli.output import console, print_json, show
from ferryman.errors import ValidationError

ticket_app = typer.Typer(help="Release tickets (上线单) and approvals.", no_args_is_help=True)
COLUMNS = ["id", "project", "env", "kind", "ref", "status", "title", "created_by", "reviewed_by"]


def _said(data: dict[str, Any], verb: str, as_json: bool = False) -> None:
    if as_json:
        print_json(data)
        return
    console.print(f"ticket #{data['id']} {verb}: {data['status']}")


@ticket_app.command("list")
def ticket_list(
    project: ProjectFilter = None,
    space: SpaceFilter = None,
    status: Annotated[
        str | None,
        typer.Option(
            help="Only tickets in this state (draft, pending_approval, approved, …).",
            metavar="STATUS",
        ),
    ] = None,
    limit: LimitOpt = 50,
    as_json: JsonOpt = False,
) -> None:
    """Tickets you can see, newest first."""
    params = {"project": project, "space": space, "status": status, "limit": limit}
    rows = Client().get("/tickets", params={k: v for k, v in params.items() if v is not None})
    show(rows, COLUMNS, as_json)


@ticket_app.command("create")
def ticket_create(
    project: ProjectArg,
    env: EnvOpt,
    title: Annotated[
        str, typer.Option("--title", help="What it ships, for the approver.", metavar="TEXT")
    ],
    ref: Annotated[
        str | None, typer.Option("--ref", help="Branch, tag or commit.", metavar="REF")
    ] = None,
    description: DescriptionOpt = "",
    hosts: Annotated[
        str | None, typer.Option(help="Only these hosts, comma-separated.", metavar="HOST,...")
    ] = None,
    not_before: Annotated[
        datetime | None,
        typer.Option("--not-before", help="Earliest start (ISO time, UTC).", metavar="TIME"),
    ] = None,
    draft: Annotated[bool, typer.Option("--draft", help="Keep it a draft.")] = False,
    config_only: Annotated[
        bool,
        typer.Option(
            "--config-only", help="Ship the live release again with the current config files."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a ticket; REF is resolved to its commit now, and that commit ships.

    With --config-only: the live release again with the current config files."""
    if bool(ref) == config_only:
        raise ValidationError("give --ref REF or --config-only (one of them)")
    body: dict[str, Any] = {
        "project": project,
        "env": env,
        "title": title,
        "description": description,
        "draft": draft,
    }
    body |= {"ref": ref} if ref else {"config_only": True}
    if hosts:
        body["hosts"] = [h.strip() for h in hosts.split(",") if h.strip()]
    if not_before:
        body["not_before"] = not_before.isoformat()
    data = Client().post("/tickets", body)
    if as_json:
        print_json(data)
        return
    console.print(
        f"ticket #{data['id']} {data['status']}: {data['kind']} "
        f"{escape(data['ref'] or '(live)')} = {data['commit'][:12]}"
    )


@ticket_app.command("show")
def ticket_show(
    ticket_id: TicketIdArg,
    preview: Annotated[bool, typer.Option("--preview", help="Commits and files to ship.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """One ticket; with --preview, the hosts and the commits and files it would ship."""
    client = Client()
    data = client.get(f"/tickets/{ticket_id}")
    if preview:
        data = {"ticket": data, "preview": client.get(f"/tickets/{ticket_id}/preview")}
        if not as_json:
            show(data["ticket"])
            print_preview(data["preview"])
            return
    show(data, as_json=as_json)


def print_preview(preview: dict[str, Any]) -> None:
    show(preview["hosts"], ["host", "release", "commit"])
    for change in preview["changes"]:
        start = (change["from"] or "nothing")[:12]
        console.print(
            f"from {start} on {len(change['hosts'])} host(s): "
            f"{len(change['commits'])} commit(s), {len(change['files'])} file(s)"
            + (" (truncated)" if change["truncated"] else "")
        )
        for commit in change["commits"]:
            console.print(
                f"  {commit['id'][:12]} {escape(commit['author'])}: {escape(commit['message'])}",
                highlight=False,
            )
        for item in change["files"]:
            console.print(f"  {item['status']} {escape(item['path'])}", highlight=False)
    for item in preview.get("config", []):
        live = ", ".join("-" if v is None else f"v{v}" for v in item["live_versions"])
        new = "removed" if item["version"] is None else f"v{item['version']}"
        state = "changes" if item["changed"] else "unchanged"
        console.print(f"config {escape(item['path'])}: {live} → {new} ({state})", highlight=False)


@ticket_app.command("submit")
def ticket_submit(ticket_id: TicketIdArg) -> None:
    """Submit a draft for approval."""
    _said(Client().post(f"/tickets/{ticket_id}/submit"), "submitted")


@ticket_app.command("approve")
def ticket_approve(
    ticket_id: TicketIdArg,
    comment: Annotated[
        str, typer.Option("--comment", help="A note kept with the approval.", metavar="TEXT")
    ] = "",
    as_json: JsonOpt = False,
) -> None:
    """Approve someone else's ticket (masters and owners); it can then be deployed."""
    _said(Client().post(f"/tickets/{ticket_id}/approve", {"comment": comment}), "approved", as_json)


@ticket_app.command("reject")
def ticket_reject(
    ticket_id: TicketIdArg,
    reason: Annotated[
        str, typer.Option("--reason", help="Why (required; the author sees it).", metavar="TEXT")
    ],
) -> None:
    """Reject someone else's ticket (masters and owners), with a reason."""
    _said(Client().post(f"/tickets/{ticket_id}/reject", {"reason": reason}), "rejected")


@ticket_app.command("deploy")
def ticket_deploy(
    ticket_id: TicketIdArg,
    scheduled: Annotated[
        bool, typer.Option("--scheduled", help="Queue it now to start at its time.")
    ] = False,
    wait: WaitOpt = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON document on stdout: the ticket (with --wait: its deploy as "
            "it ended).",
        ),
    ] = False,
) -> None:
    """Start an approved ticket (or, with --scheduled, queue it for its start time)."""
    client = Client()
    data = client.post(f"/tickets/{ticket_id}/deploy", {"schedule": scheduled})
    message = f"ticket #{ticket_id} queued as deploy #{data['deploy_id']}"
    started(client, data, data["deploy_id"], message, wait, as_json, console)


@ticket_app.command("cancel")
def ticket_cancel(ticket_id: TicketIdArg, reason: ReasonOpt = "") -> None:
    """Cancel a ticket (yours, or anyone's as a master); a queued deploy of it is dropped."""
    _said(Client().post(f"/tickets/{ticket_id}/cancel", {"reason": reason}), "cancelled")


@ticket_app.command("rollback")
def ticket_rollback(
    ticket_id: TicketIdArg,
    to: Annotated[
        str | None,
        typer.Option(
            "--to", help="Release name (default: the one it replaced).", metavar="RELEASE"
        ),
    ] = None,
    wait: WaitOpt = False,
) -> None:
    """Roll back what a ticket deployed (a new rollback ticket, queued at once)."""
    client = Client()
    data = client.post(f"/tickets/{ticket_id}/rollback", {"to": to})
    console.print(f"rollback ticket #{data['id']} queued as deploy #{data['deploy_id']}")
    if wait:
        raise typer.Exit(follow(client, data["deploy_id"], console))


def audit(
    space: SpaceFilter = None,
    actor: Annotated[
        str | None, typer.Option(help="Only what this user did.", metavar="USER")
    ] = None,
    project: ProjectFilter = None,
    action: Annotated[
        str | None, typer.Option(help="Action prefix, e.g. ticket.", metavar="PREFIX")
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Only entries from this time on (UTC).", metavar="TIME")
    ] = None,
    limit: LimitOpt = 100,
    as_json: JsonOpt = False,
) -> None:
    """Read the audit log (newest first)."""
    params: dict[str, Any] = {
        "space": space,
        "actor": actor,
        "project": project,
        "action": action,
        "since": since.isoformat() if since else None,
        "limit": limit,
    }
    rows = Client().get("/audit", params={k: v for k, v in params.items() if v is not None})
    show(rows, ["ts", "actor", "action", "target", "ip"], as_json)


def stats(
    space: SpaceFilter = None,
    project: ProjectFilter = None,
    env: EnvFilter = None,
    period: Annotated[str, typer.Option(help="day or week.", metavar="PERIOD")] = "day",
    as_json: JsonOpt = False,
) -> None:
    """Deploys, successes, failures, rollbacks, median and p95 duration per period."""
    params = {"space": space, "project": project, "env": env, "period": period}
    data = Client().get("/stats", params={k: v for k, v in params.items() if v is not None})
    if as_json:
        show(data, as_json=True)
        return
    columns = ["period", "space", "project", "env", "deploys", "rollbacks", "successes"]
    show(data["series"], [*columns, "failures", "median_seconds", "p95_seconds"])
