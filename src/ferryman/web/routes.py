"""All pages of the web UI and its static files, mounted by the API app at ``/``."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from ferryman.errors import FerrymanError
from ferryman.http_deps import SESSION_COOKIE
from ferryman.web import paths
from ferryman.web.pages import (
    account,
    deploys,
    groups,
    notify,
    projects,
    setup,
    space,
    tickets,
)
from ferryman.web.render import page, redirect, warm
from ferryman.web.session import LoginRequired, Web, language, signed_in

STATIC = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)
for module in (account, space, setup, projects, tickets, deploys, notify, groups):
    router.include_router(module.router)


@router.get("/favicon.ico", include_in_schema=False)
def favicon(request: Request) -> Response:
    """Browsers ask for it whatever the page says: the same icon."""
    return RedirectResponse(paths.location(request, "/static/favicon.svg"), status_code=301)


def mount(app: FastAPI) -> None:
    warm()  # every template compiled before the first request, not during it
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def is_page(request: Request) -> bool:
    api = ("/api/", "/healthz", "/readyz", "/docs", "/openapi")
    return not paths.route_path(request).startswith(api)


def error_page(request: Request, exc: FerrymanError) -> Response:
    """A page's failure as a page: sign-in for a missing session, else the message with the
    status the API would give (403 for a form posted without the role)."""
    if isinstance(exc, LoginRequired):
        return redirect(request, Web(lang="en").login_url(exc.next_path))
    web = _viewer(request)
    response: HTMLResponse = page(
        request, web, "error.html", status=exc.http_status, error=exc, code=exc.http_status
    )
    return response


def _viewer(request: Request) -> Web:
    """The signed-in viewer, so that a refusal keeps the navigation (their spaces, the
    language they chose); anyone else, or when that cannot be read, an anonymous one."""
    db = getattr(request.app.state, "db", None)
    if db is not None and request.cookies.get(SESSION_COOKIE):
        try:
            return signed_in(request, db)
        except Exception:  # an error page renders whatever else failed
            return Web(lang=language(request))
    return Web(lang=language(request))
