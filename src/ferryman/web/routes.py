"""All pages of the web UI and its static files, mounted by the API app at ``/``."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from ferryman.errors import FerrymanError
from ferryman.web.pages import account, deploys, notify, projects, space, tickets
from ferryman.web.render import page
from ferryman.web.session import LoginRequired, Web, language

STATIC = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)
for module in (account, space, projects, tickets, deploys, notify):
    router.include_router(module.router)


def mount(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def is_page(request: Request) -> bool:
    return not request.url.path.startswith(("/api/", "/healthz", "/docs", "/openapi"))


def error_page(request: Request, exc: FerrymanError) -> Response:
    """A page's failure as a page: sign-in for a missing session, else the message with the
    status the API would give (403 for a form posted without the role)."""
    if isinstance(exc, LoginRequired):
        return RedirectResponse(Web(lang="en").login_url(exc.next_path), status_code=303)
    web = Web(lang=language(request))
    response: HTMLResponse = page(
        request, web, "error.html", status=exc.http_status, error=exc, code=exc.http_status
    )
    return response
