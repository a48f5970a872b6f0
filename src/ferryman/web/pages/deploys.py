"""Deploys: the recent list, the live console, and the audit log."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from ferryman.domain.statuses import DEPLOY_FINISHED, DeployStatus, HostStatus
from ferryman.errors import FerrymanError
from ferryman.http_deps import DB, SettingsDep, wake_worker
from ferryman.services import (
    analysis,
    audit_views,
    deploy_views,
    deploys,
    inventory,
    projects,
    promotion,
    rollouts,
    watch_views,
)
from ferryman.services.authz import project_role
from ferryman.web import audit_text, charts, listing, paths
from ferryman.web.failure import failure
from ferryman.web.render import page, redirect
from ferryman.web.session import Viewer, Web, check_csrf, signed_in

router = APIRouter()
Csrf = Annotated[str, Form()]
ENDED = DEPLOY_FINISHED


@router.get("/s/{space}/deploys", response_class=HTMLResponse)
def deploy_list(
    request: Request,
    space: str,
    db: DB,
    project: str = "",
    env: str = "",
    status: str = "",
    user: str = "",
    since: str = "",
    before: int | None = None,
) -> HTMLResponse:
    """Every deploy of the space, newest first, filtered, a page at a time."""
    web = signed_in(request, db, space)
    only = deploy_views.DeployFilter(
        status=status or None,
        env=env or None,
        user=user or None,
        since=listing.since(since),
        before=before,
    )
    scope = f"{space}:{project}" if project else None
    rows = deploy_views.list_deploys(
        db, web.actor, project=scope, space=space, limit=listing.PAGE, only=only
    )
    filters = {"project": project, "env": env, "status": status, "user": user, "since": since}
    return page(
        request,
        web,
        "deploys.html",
        deploys=rows,
        total=deploy_views.count_deploys(db, web.actor, project=scope, space=space, only=only),
        filters=filters,
        paged=before is not None,
        first_url=listing.first_page(paths.route_path(request), filters, before is not None),
        next_url=listing.next_page(paths.route_path(request), filters, rows),
        projects=projects.list_projects(db, web.actor, space),
        environments=[e["name"] for e in inventory.list_environments(db, web.actor, space)],
        states=tuple(DeployStatus),
    )


def _actions(web: Viewer, deploy: dict[str, Any], role: Any) -> dict[str, bool]:
    """Which buttons the console offers: the same rules the services apply (they check
    again when the form is posted)."""
    status = deploy["status"]
    own = deploy["requested_by"] == web.actor.username
    live = status in (DeployStatus.RUNNING, DeployStatus.PAUSED) and deploy["rollout"] is not None
    retryable = deploy["kind"] in ("deploy", "config") and status in (
        DeployStatus.FAILED,
        DeployStatus.CANCELLED,
    )
    may_retry = web.can("ticket.deploy" if deploy["ticket_id"] else "deploy.direct", role)
    hosts = deploy.get("hosts") or []
    failed = [h for h in hosts if h["status"] == HostStatus.FAILED]
    served = [h for h in hosts if h["status"] == HostStatus.SUCCESS]
    deployish = deploy["kind"] in ("deploy", "config") and status in ENDED
    return {
        "cancel": status in (DeployStatus.QUEUED, DeployStatus.RUNNING)
        and web.can("deploy.cancel" if own else "deploy.cancel_any", role),
        "continue": live and status == DeployStatus.PAUSED and web.can("rollout.continue", role),
        "abort": live and web.can("rollout.abort", role),
        "rollout_rollback": live and web.can("deploy.rollback", role),
        "retry": retryable and may_retry,
        # some hosts serve the release and some failed: shipping it to the rest ends the
        # environment on one release (a failed deploy undone everywhere is retried whole)
        "retry_failed": deployish and may_retry and bool(failed) and bool(served),
        "rollback": retryable and web.can("deploy.rollback", role),
        "promote": deploy["kind"] == "deploy"
        and status == DeployStatus.SUCCESS
        and bool(deploy["commit"])
        and web.can("ticket.create", role),
    }


def _promote_to(config: dict[str, Any], env: str) -> list[str]:
    """Where a successful deploy of ``env`` may be promoted: the environments that require a
    commit to pass ``env`` first, then the project's other environments."""
    environments = config.get("environments", {})
    gated = sorted(e for e, c in environments.items() if c.get("requires_passed") == env)
    return gated + sorted(e for e in environments if e != env and e not in gated)


@router.get("/s/{space}/deploys/{deploy_id}", response_class=HTMLResponse)
def console(request: Request, space: str, deploy_id: int, db: DB) -> HTMLResponse:
    """The live console: the page holds the deploy's state; its script replays the whole log
    over the WebSocket and follows it (and reconnects) from there, and fetches the page's
    live parts (banner, rollout card, buttons) again when the deploy's status changes."""
    web = signed_in(request, db, space)
    row = deploy_views.visible_deploy(db, web.actor, deploy_id)
    deploy = deploy_views.get(db, deploy_id)
    with db.read() as s:
        project = projects.find_project(s, web.actor, row.project_id, "deploy.read")
        role = project_role(s, web.actor, project)
    shown = failure(deploy, deploy_views.secret_masker(db, row))
    took = None
    if deploy["started_at"] and deploy["finished_at"]:
        took = (
            datetime.fromisoformat(deploy["finished_at"])
            - datetime.fromisoformat(deploy["started_at"])
        ).total_seconds()
    serving = sorted(h["host"] for h in deploy["hosts"] if h["status"] == HostStatus.SUCCESS)
    measured = analysis.of_deploy(db, web.actor, deploy_id) if deploy["rollout"] else None
    return page(
        request,
        web,
        "console.html",
        analysis=charts.analysis(measured["metrics"], measured["measurements"]) if measured else [],
        promote_to=_promote_to(project.config, deploy["env"]),
        deploy=deploy,
        actions=_actions(web, deploy, role),
        failure=shown,
        ended=deploy["status"] in ENDED,
        took=took,
        serving=serving,
        watch=watch_views.of_deploy(db, deploy_id),
    )


def _back(request: Request, web: Web, space: str, deploy_id: int, exc: FerrymanError) -> Response:
    """A refusal that is not about who may do it (a conflict, a stale approval) goes back to
    the console with the reason; 401/403/404 stay error pages."""
    if exc.http_status in (401, 403, 404):
        raise exc
    return redirect(request, f"/s/{space}/deploys/{deploy_id}", web.say(exc.message))


@router.post("/s/{space}/deploys/{deploy_id}/retry", response_model=None)
def retry(
    request: Request,
    space: str,
    deploy_id: int,
    db: DB,
    csrf: Csrf,
    failed_only: Annotated[str, Form()] = "",
) -> Response:
    """Ship a failed deploy's commit again (its kept build), to every host or to the hosts
    that do not serve its release; ``request_retry`` checks the role and the approval."""
    web = signed_in(request, db, space)
    check_csrf(web, csrf)
    try:
        again = deploys.request_retry(db, web.actor, deploy_id, failed_only=bool(failed_only))
    except FerrymanError as exc:
        return _back(request, web, space, deploy_id, exc)
    wake_worker(request)
    return redirect(
        request, f"/s/{space}/deploys/{again.id}", web._("Retry #%(id)s queued.", id=again.id)
    )


@router.post("/s/{space}/deploys/{deploy_id}/promote", response_model=None)
async def promote(
    request: Request,
    space: str,
    deploy_id: int,
    db: DB,
    settings: SettingsDep,
    csrf: Csrf,
    env: Annotated[str, Form()],
) -> Response:
    """A ticket for ``env`` from this successful deploy: the same commit, its preview against
    what ``env`` runs (``requires_passed``: test → approval → production)."""
    web = await asyncio.to_thread(signed_in, request, db, space)
    check_csrf(web, csrf)
    try:
        made = await promotion.promote(db, settings, web.actor, deploy_id, env.strip())
    except FerrymanError as exc:
        return _back(request, web, space, deploy_id, exc)
    return redirect(
        request,
        f"/s/{space}/tickets/{made['id']}",
        web._("Ticket #%(id)s made for %(env)s.", id=made["id"], env=env.strip()),
    )


@router.post("/s/{space}/deploys/{deploy_id}/rollback", response_model=None)
def rollback(request: Request, space: str, deploy_id: int, db: DB, csrf: Csrf) -> Response:
    """Roll the deploy's environment back to its previous good release."""
    web = signed_in(request, db, space)
    check_csrf(web, csrf)
    row = deploy_views.visible_deploy(db, web.actor, deploy_id)
    try:
        back = deploys.request_rollback(db, web.actor, row.project_id, row.env)
    except FerrymanError as exc:
        return _back(request, web, space, deploy_id, exc)
    wake_worker(request)
    return redirect(
        request, f"/s/{space}/deploys/{back.id}", web._("Rollback #%(id)s queued.", id=back.id)
    )


@router.post("/s/{space}/deploys/{deploy_id}/cancel", response_model=None)
def cancel(request: Request, space: str, deploy_id: int, db: DB, csrf: Csrf) -> Response:
    web = signed_in(request, db, space)
    check_csrf(web, csrf)
    deploys.request_cancel(db, web.actor, deploy_id, "from the console")
    return redirect(request, f"/s/{space}/deploys/{deploy_id}", web._("Stopping…"))


@router.post("/s/{space}/deploys/{deploy_id}/rollout/{action}", response_model=None)
def rollout_action(
    request: Request, space: str, deploy_id: int, action: str, db: DB, csrf: Csrf
) -> Response:
    """continue, abort or rollback a gray release (the service checks the role)."""
    web = signed_in(request, db, space)
    check_csrf(web, csrf)
    rollouts.request(db, web.actor, deploy_id, action)
    wake_worker(request)
    said = {
        "continue": web._("Continuing the rollout."),
        "abort": web._("Aborting the rollout."),
        "rollback": web._("Rolling the rollout back."),
    }.get(action, "")
    return redirect(request, f"/s/{space}/deploys/{deploy_id}", said)


@router.get("/s/{space}/audit", response_class=HTMLResponse)
def audit(
    request: Request,
    space: str,
    db: DB,
    who: str = "",
    action: str = "",
    project: str = "",
    since: str = "",
    before: int | None = None,
) -> HTMLResponse:
    web = signed_in(request, db, space)
    start = None
    if since:
        try:
            start = datetime.fromisoformat(since)
        except ValueError:
            start = None
    rows = audit_views.read_audit(
        db,
        web.actor,
        space=space,
        who=who or None,
        action=action or None,
        project=project or None,
        since=start,
        limit=100,
        before_id=before,
    )
    for row in rows:
        verb = audit_text.VERBS.get(row["action"])
        row["verb"] = web._(verb) if verb else row["action"]
        row["link"] = audit_text.link(str(row["target"]), space)
    return page(
        request,
        web,
        "audit.html",
        rows=rows,
        filters={"who": who, "action": action, "project": project, "since": since},
    )
