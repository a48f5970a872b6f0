"""Tickets (上线单): the list with filters, the form with live ref pickers and host choice, and
the detail page with preview, review, deploy, cancel, rollback and the timeline."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from ferryman.domain import tickets as states
from ferryman.domain.statuses import DEPLOY_ACTIVE, TICKET_OPEN, TicketStatus
from ferryman.errors import FerrymanError
from ferryman.http_deps import DB, SettingsDep, wake_worker
from ferryman.services import deploy_views, inventory, projects, tickets
from ferryman.services.authz import project_role
from ferryman.web import listing, paths
from ferryman.web.render import page, redirect
from ferryman.web.session import Viewer, check_csrf, signed_in

router = APIRouter()
Csrf = Annotated[str, Form()]


@router.get("/s/{space}/tickets", response_class=HTMLResponse)
def ticket_list(
    request: Request,
    space: str,
    db: DB,
    status: str = "",
    project: str = "",
    env: str = "",
    user: str = "",
    since: str = "",
    mine: str = "",
    before: int | None = None,
) -> HTMLResponse:
    """Every ticket of the space, newest first, filtered, a page at a time."""
    web = signed_in(request, db, space)
    who = web.actor.username if mine else (user or None)
    narrowed: dict[str, Any] = {
        "space": space,
        "project": f"{space}:{project}" if project else None,
        "status": status if status in states.STATES else None,
        "env": env or None,
        "user": who,
        "since": listing.since(since),
    }
    rows = tickets.list_tickets(db, web.actor, limit=listing.PAGE, before=before, **narrowed)
    filters = {
        "status": status,
        "project": project,
        "env": env,
        "user": user,
        "since": since,
        "mine": mine,
    }
    return page(
        request,
        web,
        "tickets.html",
        tickets=rows,
        total=tickets.count_tickets(db, web.actor, **narrowed),
        states=states.STATES,
        projects=projects.list_projects(db, web.actor, space),
        environments=[e["name"] for e in inventory.list_environments(db, web.actor, space)],
        filters=filters,
        paged=before is not None,
        first_url=listing.first_page(paths.route_path(request), filters, before is not None),
        next_url=listing.next_page(paths.route_path(request), filters, rows),
    )


def _as_utc(typed: str, offset: str, zone: str = "") -> datetime:
    """A time typed in the viewer's zone → UTC: the zone they chose in their account, else
    the browser's — ``offset`` is what the page's script read from
    ``Date.getTimezoneOffset()`` (minutes from local to UTC); without either, UTC."""
    moment = datetime.fromisoformat(typed)
    if moment.tzinfo is not None:
        return moment.astimezone(UTC)
    if zone:
        return moment.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
    minutes = int(offset) if offset.lstrip("-").isdigit() else 0
    if abs(minutes) > 14 * 60:
        raise ValueError("no such time zone")
    return moment.replace(tzinfo=UTC) + timedelta(minutes=minutes)


def _by_name(host: dict[str, str]) -> tuple[str, str]:
    return (host["name"] or "\uffff", host["key"])


def _new_form(
    request: Request,
    web: Viewer,
    db: Any,
    space: str,
    project: str,
    env: str,
    values: dict[str, Any],
    error: str = "",
    status: int = 200,
) -> HTMLResponse:
    project_rows = projects.list_projects(db, web.actor, space)
    project = project or (project_rows[0]["name"] if project_rows else "")
    hosts: list[str] = []
    envs: list[str] = []
    if project:
        _found, config = projects.project_config(
            db, web.actor, f"{space}:{project}", "project.read"
        )
        envs = sorted(config.environments)
        env = env if env in envs else (envs[0] if envs else "")
        hosts = [h.key for h in config.environment(env).hosts] if env else []
    names = inventory.server_names(db, web.actor, space)
    shown = sorted(({"key": h, "name": names.get(h, "")} for h in hosts), key=_by_name)
    return page(
        request,
        web,
        "ticket_new.html",
        status=status,
        projects=project_rows,
        project=project,
        envs=envs,
        env=env,
        hosts=shown,
        values=values,
        error=error,
    )


@router.get("/s/{space}/tickets/new", response_class=HTMLResponse)
def new_ticket(
    request: Request, space: str, db: DB, project: str = "", env: str = ""
) -> HTMLResponse:
    web = signed_in(request, db, space)
    return _new_form(request, web, db, space, project, env, {})


@router.post("/s/{space}/tickets", response_model=None)
async def create_ticket(request: Request, space: str, db: DB, settings: SettingsDep) -> Response:
    web = await asyncio.to_thread(signed_in, request, db, space)
    form = await request.form()
    check_csrf(web, str(form.get("csrf", "")))
    values = {k: str(v) for k, v in form.items()}
    project, env = values.get("project", ""), values.get("env", "")
    chosen = [str(h) for h in form.getlist("hosts")]
    every = values.get("all_hosts") == "1"
    not_before = None
    if values.get("not_before"):
        try:
            not_before = _as_utc(values["not_before"], values.get("tz_offset", ""), web.zone)
        except ValueError:
            return await asyncio.to_thread(
                _new_form,
                request,
                web,
                db,
                space,
                project,
                env,
                values,
                web._("The start time is not a valid time."),
                422,
            )
    config_only = values.get("config_only") == "1"
    try:
        made = await tickets.create_ticket(
            db,
            settings,
            web.actor,
            f"{space}:{project}",
            env,
            "" if config_only else values.get("ref", "").strip(),
            title=values.get("title", ""),
            description=values.get("description", ""),
            hosts=None if every else chosen,
            not_before=not_before,
            draft=values.get("draft") == "1",
            config_only=config_only,
        )
    except FerrymanError as exc:
        if exc.http_status in (401, 403, 404):
            raise
        return await asyncio.to_thread(
            _new_form, request, web, db, space, project, env, values, exc.message, exc.http_status
        )
    return redirect(
        request, f"/s/{space}/tickets/{made['id']}", web._("Ticket #%(id)s created.", id=made["id"])
    )


@router.get("/s/{space}/tickets/{ticket_id}", response_class=HTMLResponse)
async def ticket_detail(
    request: Request, space: str, ticket_id: int, db: DB, settings: SettingsDep
) -> HTMLResponse:
    web = await asyncio.to_thread(signed_in, request, db, space)
    ticket = await asyncio.to_thread(tickets.get_ticket, db, web.actor, ticket_id)

    def role() -> Any:
        with db.read() as s:
            found = projects.find_project(s, web.actor, ticket["project_id"], "ticket.read")
            return project_role(s, web.actor, found)

    project_role_now = await asyncio.to_thread(role)
    try:
        preview = await tickets.preview(db, settings, web.actor, ticket_id)
        preview_error = ""
    except FerrymanError as exc:
        preview, preview_error = None, exc.message
    events = await asyncio.to_thread(tickets.timeline, db, web.actor, ticket_id)
    rollbacks: list[dict[str, Any]] = []
    if ticket["kind"] in ("deploy", "config") and ticket["deploy_id"] is not None:
        rollbacks = await asyncio.to_thread(deploy_views.rollbacks_after, db, ticket["deploy_id"])
    events = _with_rollbacks(events, rollbacks)
    rolled_back = next((r for r in reversed(rollbacks) if r["undid"]), None)
    rolling_back = any(r["status"] in DEPLOY_ACTIVE for r in rollbacks)
    own = ticket["created_by"] == web.actor.username
    can = {
        "approve": ticket["status"] == TicketStatus.PENDING_APPROVAL
        and not own
        and web.can("ticket.approve", project_role_now),
        "deploy": ticket["status"] == TicketStatus.APPROVED
        and web.can("ticket.deploy", project_role_now),
        "cancel": ticket["status"] in (*TICKET_OPEN, TicketStatus.QUEUED, TicketStatus.RUNNING)
        and (own or web.can("ticket.approve", project_role_now)),
        "submit": ticket["status"] in (TicketStatus.DRAFT, TicketStatus.REJECTED) and own,
        "rollback": ticket["kind"] in ("deploy", "config")
        and ticket["deploy_id"] is not None
        and ticket["status"] == TicketStatus.SUCCEEDED
        and rolled_back is None
        and not rolling_back
        and web.can("ticket.rollback", project_role_now),
    }
    return page(
        request,
        web,
        "ticket.html",
        ticket=ticket,
        preview=preview,
        preview_error=preview_error,
        events=events,
        can=can,
        rolled_back=rolled_back,
    )


def _with_rollbacks(
    events: list[dict[str, Any]], rollbacks: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The ticket's timeline with the rollbacks that took its release away (from any
    ticket, the Releases page or the CLI), in time order."""
    shown = {e.get("deploy_id") for e in events if str(e["action"]).startswith("rollback.")}
    for r in rollbacks:
        if r["id"] in shown:
            continue
        events.append(
            {
                "ts": r["created_at"],
                "actor": r["requested_by"],
                "action": "rollback.requested",
                "comment": r["release"],
                "deploy_id": r["id"],
            }
        )
        if r["finished_at"]:
            events.append(
                {
                    "ts": r["finished_at"],
                    "actor": "ferryman",
                    "action": f"rollback.{r['status']}",
                    "comment": r["release"],
                    "deploy_id": r["id"],
                }
            )
    return sorted(events, key=lambda e: str(e["ts"]))


@router.post("/s/{space}/tickets/{ticket_id}/{action}", response_model=None)
def ticket_action(
    request: Request,
    space: str,
    ticket_id: int,
    action: str,
    db: DB,
    csrf: Csrf,
    comment: Annotated[str, Form()] = "",
    schedule: Annotated[bool, Form()] = False,
) -> Response:
    """approve, reject, submit, deploy, cancel or rollback; the service checks the role."""
    web = signed_in(request, db, space)
    check_csrf(web, csrf)
    actor = web.actor
    go_to = f"/s/{space}/tickets/{ticket_id}"
    if action == "approve":
        tickets.approve_ticket(db, actor, ticket_id, comment)
        said = web._("Approved.")
    elif action == "reject":
        tickets.reject_ticket(db, actor, ticket_id, comment)
        said = web._("Rejected.")
    elif action == "submit":
        tickets.submit_ticket(db, actor, ticket_id)
        said = web._("Submitted for approval.")
    elif action == "deploy":
        done = tickets.deploy_ticket(db, actor, ticket_id, schedule)
        wake_worker(request)
        said = web._("Deploy #%(id)s queued.", id=done["deploy_id"])
        go_to = f"/s/{space}/deploys/{done['deploy_id']}"
    elif action == "cancel":
        tickets.cancel_ticket(db, actor, ticket_id, comment)
        said = web._("Cancelled.")
    elif action == "rollback":
        made = tickets.rollback_ticket(db, actor, ticket_id, comment)
        wake_worker(request)
        said = web._("Rollback ticket #%(id)s queued.", id=made["id"])
        go_to = f"/s/{space}/deploys/{made['deploy_id']}"
    else:
        from ferryman.errors import NotFound

        raise NotFound(f"no ticket action {action!r}")
    return redirect(request, go_to, said)
