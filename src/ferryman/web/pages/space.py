"""The dashboard of a space, its members and its servers (with an SSH check)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from ferryman.db.models import utcnow
from ferryman.db.session import Database
from ferryman.domain.statuses import DeployStatus, TicketStatus
from ferryman.errors import FerrymanError, NotFound
from ferryman.http_deps import DB, SettingsDep
from ferryman.services import checks, deploy_views, inventory, projects, spaces, stats, tickets
from ferryman.web import charts, i18n
from ferryman.web.pages import groups
from ferryman.web.render import page, redirect
from ferryman.web.session import Viewer, check_csrf, signed_in

router = APIRouter()
SERVERS_PAGE = 100
Csrf = Annotated[str, Form()]
Text = Annotated[str, Form()]
DAYS = 14


@router.get("/", response_model=None)
def home(request: Request, db: DB) -> Response:
    web = signed_in(request, db)
    if web.space is None:
        return page(request, web, "no_space.html")
    return redirect(request, f"/s/{web.space['name']}/")


@router.get("/spaces/switch", response_model=None)
def switch_space(request: Request, db: DB, space: str) -> Response:
    web = signed_in(request, db, space)
    if web.space is None:  # no space at all: the home page says what to do
        return redirect(request, "/")
    return redirect(request, f"/s/{web.space['name']}/")


@router.get("/s/{space}/", response_class=HTMLResponse)
def dashboard(
    request: Request,
    space: str,
    db: DB,
    settings: SettingsDep,
    project: str = "",
    env: str = "",
) -> HTMLResponse:
    web = signed_in(request, db, space)
    actor = web.actor
    scope = f"{space}:{project}" if project else None

    def deploys_with(status: str | None, limit: int) -> list[dict[str, Any]]:
        only = deploy_views.DeployFilter(status=status, env=env or None)
        return deploy_views.list_deploys(
            db, actor, project=scope, space=space, limit=limit, only=only
        )

    # the newest few, and what runs or waits now: read by the query, not filtered from 200
    recent = deploys_with(None, 15)
    active = sorted(
        deploys_with(DeployStatus.RUNNING, 50) + deploys_with(DeployStatus.QUEUED, 50),
        key=lambda d: -d["id"],
    )
    pending = [
        t
        for t in tickets.list_tickets(
            db, actor, space=space, status=TicketStatus.PENDING_APPROVAL, limit=50
        )
        if t["created_by"] != actor.username
    ]
    if not web.can("ticket.approve"):
        pending = []
    numbers = stats.deploy_stats(
        db,
        actor,
        space=None if project else space,
        project=f"{space}:{project}" if project else None,
        env=env or None,
        since=utcnow() - timedelta(days=DAYS),
    )
    days = charts.daily(numbers["series"], DAYS, utcnow().date())
    return page(
        request,
        web,
        "dashboard.html",
        active=active,
        pending=pending,
        recent=recent[:15],
        total=numbers["total"],
        bars=charts.bars(days),
        trend=charts.trend(days),
        days=days,
        projects=projects.list_projects(db, actor, space),
        environments=[e["name"] for e in inventory.list_environments(db, actor, space)],
        project=project,
        env=env,
        sandbox_off=settings.sandbox == "off",
        onboarding=_onboarding(db, web, space),
    )


def _onboarding(db: Database, web: Viewer, space: str) -> list[dict[str, Any]] | None:
    """The steps to a first deploy, for a space that has not had one yet (``None`` after):
    each with whether it is done as far as the records tell, and where to do it."""
    shipped = deploy_views.any_deploy(
        db, web.actor, space=space, only=deploy_views.DeployFilter(status=DeployStatus.SUCCESS)
    )
    if shipped:
        return None
    servers = inventory.list_servers(db, web.actor, space)
    owned = projects.list_projects(db, web.actor, space)
    base = f"/s/{space}"
    first = owned[0]["name"] if owned else ""
    steps = [
        (web._("Add a server"), bool(servers), f"{base}/servers/new", "server.manage"),
        (
            web._("Trust its host key (compare the fingerprint with the host's own)"),
            any(x["host_key"] for x in servers),
            f"{base}/servers",
            "server.trust",
        ),
        (
            web._("Add this space's public key to the server's authorized_keys"),
            False,
            f"{base}/servers#public-key",
            "server.manage",
        ),
        (web._("Create a project"), bool(owned), f"{base}/projects/new", "project.create"),
        (
            web._("Run detection on the project"),
            False,
            f"{base}/projects/{first}" if first else f"{base}/projects",
            "project.detect",
        ),
        (web._("Deploy for the first time"), False, f"{base}/tickets/new", "ticket.create"),
    ]
    # a step the viewer's role cannot take is shown, never linked to a form it cannot send
    return [
        {"text": text, "done": done, "href": href if web.can(action) else None}
        for text, done, href, action in steps
    ]


# --- members -------------------------------------------------------------------------------


@router.get("/s/{space}/members", response_class=HTMLResponse)
def members(request: Request, space: str, db: DB) -> HTMLResponse:
    web = signed_in(request, db, space)
    return groups.members_page(request, web, db, space)


@router.post("/s/{space}/members", response_model=None)
def set_member(
    request: Request, space: str, db: DB, csrf: Csrf, username: Text, role: Text
) -> Response:
    """Invite a user into the space, or change a member's role."""
    web = signed_in(request, db, space)
    check_csrf(web, csrf)
    try:
        spaces.set_member(db, web.actor, space, username.strip(), role)
    except FerrymanError as exc:
        if exc.http_status in (401, 403):
            raise
        return groups.members_page(
            request,
            web,
            db,
            space,
            exc.message,
            "member",
            {"username": username, "role": role},
            exc.http_status,
        )
    return redirect(
        request,
        f"/s/{space}/members",
        web._("%(name)s is now %(role)s.", name=username, role=i18n.label(web.lang, role)),
    )


@router.post("/s/{space}/members/{username}/remove", response_model=None)
def remove_member(request: Request, space: str, username: str, db: DB, csrf: Csrf) -> Response:
    web = signed_in(request, db, space)
    check_csrf(web, csrf)
    spaces.remove_member(db, web.actor, space, username)
    return redirect(request, f"/s/{space}/members", web._("%(name)s removed.", name=username))


# --- servers -------------------------------------------------------------------------------


def _public_key(settings: Any, db: Database, web: Viewer) -> str:
    """The current space's own public key (the default space's is the server's)."""
    from ferryman.keys import public_key
    from ferryman.services.host_keys import space_key

    if web.space is None:  # no space of their own yet: no key to show
        return ""
    try:
        space_id, uses_server_key, _name = space_key(db, web.actor, web.space["id"])
        return public_key(settings, space_id, uses_server_key)
    except (OSError, NotFound):  # no key made yet: the page says how to make one
        return ""


@router.get("/s/{space}/servers", response_class=HTMLResponse)
def servers(
    request: Request, space: str, db: DB, settings: SettingsDep, after: str = ""
) -> HTMLResponse:
    """The space's servers by name, a hundred at a time."""
    web = signed_in(request, db, space)
    rows, total = inventory.server_page(db, web.actor, space, after=after, limit=SERVERS_PAGE)
    return page(
        request,
        web,
        "servers.html",
        servers=rows,
        total=total,
        first_url=f"/s/{space}/servers" if after else "",
        next_url=(
            f"/s/{space}/servers?{urlencode({'after': rows[-1]['name']})}"
            if len(rows) == SERVERS_PAGE
            else ""
        ),
        public_key=_public_key(settings, db, web),
        install=None,
    )


def _server_form(
    request: Request, web: Viewer, server: dict[str, Any] | None, error: str = "", status: int = 200
) -> HTMLResponse:
    return page(request, web, "server_form.html", status=status, server=server or {}, error=error)


@router.get("/s/{space}/servers/new", response_class=HTMLResponse)
def new_server(request: Request, space: str, db: DB) -> HTMLResponse:
    web = signed_in(request, db, space)
    return _server_form(request, web, None)


@router.get("/s/{space}/servers/{server_id}", response_class=HTMLResponse)
def edit_server(request: Request, space: str, server_id: int, db: DB) -> HTMLResponse:
    web = signed_in(request, db, space)
    return _server_form(request, web, inventory.get_server(db, web.actor, server_id))


@router.post("/s/{space}/servers", response_model=None)
def save_server(
    request: Request,
    space: str,
    db: DB,
    csrf: Csrf,
    name: Text,
    address: Text,
    port: Annotated[int, Form()] = 22,
    user: Annotated[str, Form()] = "",
    labels: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    environments: Annotated[str, Form()] = "",
    server_id: Annotated[int | None, Form()] = None,
) -> Response:
    web = signed_in(request, db, space)
    check_csrf(web, csrf)
    label_list = [x.strip() for x in labels.replace(",", " ").split() if x.strip()]
    fields = {
        "address": address.strip(),
        "port": port,
        "user": user.strip(),
        "labels": label_list,
        "description": description,
        "environments": [x for x in environments.replace(",", " ").split() if x],
    }
    try:
        if server_id:
            inventory.update_server(db, web.actor, server_id, **fields)
        else:
            inventory.create_server(db, web.actor, space, name.strip(), **fields)  # type: ignore[arg-type]
    except FerrymanError as exc:
        if exc.http_status in (401, 403, 404):
            raise
        return _server_form(
            request,
            web,
            {"id": server_id, "name": name, **fields, "labels": label_list},
            exc.message,
            exc.http_status,
        )
    return redirect(request, f"/s/{space}/servers", web._("Server %(name)s saved.", name=name))


@router.post("/s/{space}/servers/{server_id}/delete", response_model=None)
def delete_server(request: Request, space: str, server_id: int, db: DB, csrf: Csrf) -> Response:
    web = signed_in(request, db, space)
    check_csrf(web, csrf)
    inventory.delete_server(db, web.actor, server_id)
    return redirect(request, f"/s/{space}/servers", web._("Server removed."))


@router.post("/s/{space}/servers/{server_id}/agent", response_class=HTMLResponse)
def agent_install(
    request: Request,
    space: str,
    server_id: int,
    db: DB,
    settings: SettingsDep,
    csrf: Csrf,
    user: Annotated[str, Form()] = "root",
    cron: Annotated[bool, Form()] = False,
) -> HTMLResponse:
    """Pull mode: a new token for this server and the one-liner that installs its poller
    (shown once)."""
    import base64

    from ferryman.commands import agent_script
    from ferryman.domain import validate
    from ferryman.services import agents

    web = signed_in(request, db, space)
    check_csrf(web, csrf)
    user = validate.username(user or "root")  # before a token is made: it goes in a root script
    server = inventory.get_server(db, web.actor, server_id)
    made = agents.register(db, web.actor, space, server["address"])
    script = agent_script.install_script(
        str(request.base_url).rstrip("/"),
        made["host"],
        made["token"],
        user=user,
        cron=cron,
    )
    one_liner = f"echo {base64.b64encode(script.encode()).decode()} | base64 -d | sudo bash"
    rows = inventory.list_servers(db, web.actor, space)
    return page(
        request,
        web,
        "servers.html",
        servers=rows,
        public_key=_public_key(settings, db, web),
        install={"server": server["name"], "command": one_liner},
    )


@router.post("/s/{space}/servers/{server_id}/check")
async def check_server(
    request: Request, space: str, server_id: int, db: DB, settings: SettingsDep
) -> JSONResponse:
    """Connect with the server's key and run ``true`` (``services/checks.py``): ok, or what
    failed and how to fix it. (Called by the page's script with the CSRF header.)"""
    import asyncio

    web = await asyncio.to_thread(signed_in, request, db, space)
    check_csrf(web, request.headers.get("x-csrf-token"))
    # the server as the viewer may see it, before anything connects
    await asyncio.to_thread(inventory.get_server, db, web.actor, server_id)
    if not web.can("server.read"):
        raise NotFound(f"no server #{server_id}")
    checked = await checks.server(db, settings, web.actor, server_id)
    if checked.ok:
        result = {"ok": True, "message": web._("Connected and ran a command.")}
    else:
        if checked.cause == "host_key":
            fix = web._("Check the host key on the host, then pin it here (Trust host key).")
        elif checked.cause == "permission":
            fix = web._(
                "Add the public key below to ~%(user)s/.ssh/authorized_keys.", user=checked.user
            )
        else:
            fix = web._("Check the address, the port and the firewall.")
        result = {"ok": False, "message": checked.message, "fix": fix}
    return JSONResponse(result)


@router.get("/s/{space}/servers/{server_id}/trust", response_class=HTMLResponse)
async def trust_form(request: Request, space: str, server_id: int, db: DB) -> HTMLResponse:
    """What the server presents now: its fingerprint, to compare with the host's own
    (``ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`` there) before pinning it."""
    import asyncio

    from ferryman.services import host_keys

    web = await asyncio.to_thread(signed_in, request, db, space)
    server = await asyncio.to_thread(inventory.get_server, db, web.actor, server_id)
    seen = await host_keys.server_key(db, web.actor, server_id)
    error = seen["error"] or ""
    return page(
        request,
        web,
        "server_trust.html",
        server=server,
        seen=seen if seen["presented"] else {},
        error=error,
    )


@router.post("/s/{space}/servers/{server_id}/trust", response_model=None)
async def trust_server(
    request: Request,
    space: str,
    server_id: int,
    db: DB,
    csrf: Csrf,
    fingerprint: Text,
) -> Response:
    import asyncio

    from ferryman.services import host_keys

    web = await asyncio.to_thread(signed_in, request, db, space)
    check_csrf(web, csrf)
    data = await host_keys.trust_server(db, web.actor, server_id, fingerprint.strip())
    return redirect(
        request,
        f"/s/{space}/servers",
        web._("Host key of %(name)s pinned.", name=data["name"]),
    )
