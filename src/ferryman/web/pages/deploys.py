"""Deploys: the recent list, the live console, and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from ferryman.api.deps import DB, wake_worker
from ferryman.services import audit_views, deploy_views, deploys, rollouts
from ferryman.web.render import page, redirect
from ferryman.web.session import check_csrf, signed_in

router = APIRouter()
Csrf = Annotated[str, Form()]


@router.get("/s/{space}/deploys", response_class=HTMLResponse)
def deploy_list(request: Request, space: str, db: DB) -> HTMLResponse:
    web = signed_in(request, db, space)
    assert web.actor is not None
    rows = deploy_views.list_deploys(db, web.actor, space=space, limit=100)
    return page(request, web, "deploys.html", deploys=rows)


@router.get("/s/{space}/deploys/{deploy_id}", response_class=HTMLResponse)
def console(request: Request, space: str, deploy_id: int, db: DB) -> HTMLResponse:
    """The live console: the page holds the deploy's state; its script replays the whole log
    over the WebSocket and follows it (and reconnects) from there."""
    web = signed_in(request, db, space)
    assert web.actor is not None
    deploy_views.visible_deploy(db, web.actor, deploy_id)
    deploy = deploy_views.get(db, deploy_id)
    own = deploy["requested_by"] == web.actor.username
    can_cancel = deploy["status"] in ("queued", "running") and (
        web.can("deploy.cancel") if own else web.can("deploy.cancel_any")
    )
    live = deploy["status"] in ("running", "paused") and deploy["rollout"] is not None
    can_rollout = {
        "continue": live and deploy["status"] == "paused" and web.can("rollout.continue"),
        "abort": live and web.can("rollout.abort"),
        "rollback": live and web.can("deploy.rollback"),
    }
    return page(
        request, web, "console.html", deploy=deploy, can_cancel=can_cancel, can_rollout=can_rollout
    )


@router.post("/s/{space}/deploys/{deploy_id}/cancel", response_model=None)
def cancel(request: Request, space: str, deploy_id: int, db: DB, csrf: Csrf) -> Response:
    web = signed_in(request, db, space)
    check_csrf(web, csrf)
    assert web.actor is not None
    deploys.request_cancel(db, web.actor, deploy_id, "from the console")
    return redirect(request, f"/s/{space}/deploys/{deploy_id}", web._("Stopping…"))


@router.post("/s/{space}/deploys/{deploy_id}/rollout/{action}", response_model=None)
def rollout_action(
    request: Request, space: str, deploy_id: int, action: str, db: DB, csrf: Csrf
) -> Response:
    """continue, abort or rollback a gray release (the service checks the role)."""
    web = signed_in(request, db, space)
    check_csrf(web, csrf)
    assert web.actor is not None
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
    assert web.actor is not None
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
    return page(
        request,
        web,
        "audit.html",
        rows=rows,
        filters={"who": who, "action": action, "project": project, "since": since},
    )
