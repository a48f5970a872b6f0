"""The FastAPI application: REST under /api/v1, OpenAPI at /docs (Swagger UI served from the
installed package, so it works on a network without the internet), an embedded worker.
The web pages are handed in (``Pages``) by the module that builds the whole server,
``ferryman/app.py``: the API imports no page.

Every response carries ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy:
same-origin``; ``/docs`` its own Content-Security-Policy; every body is bounded
(``api/limits.py``).

``/healthz`` says the process is alive (always 200, no database); ``/readyz`` says whether it
can serve and ``/metrics`` is for Prometheus (``observability/health.py``). During a database
outage every API request answers JSON 503 ``database_unavailable`` (with ``Retry-After``) and
a page a plain 503 page — never a 500 with a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import html
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any, Protocol

import fastapi_offline
import swagger_ui_bundle  # type: ignore[import-untyped]  # Swagger UI dist, no types
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ferryman import __version__
from ferryman.api import envelope
from ferryman.api.limits import ASGIApp, BodyLimit, Message, Receive, Send
from ferryman.api.routes import router
from ferryman.config.settings import Settings
from ferryman.db.outage import is_outage
from ferryman.db.session import Database
from ferryman.errors import STALE_FORM, CsrfFailed, FerrymanError, NotFound, ValidationError
from ferryman.jobs.worker import Worker
from ferryman.observability import health


def _error(
    status: int, code: str, message: str, details: Any = None, said: Any = None
) -> JSONResponse:
    """The envelope; ``said``: the message as made (its template and params go beside it)."""
    body = {"code": code, "message": message, **envelope.said_parts(said), "details": details or {}}
    return JSONResponse(status_code=status, content={"error": body})


DATABASE_UNAVAILABLE = "the database is unavailable; try again shortly"
RETRY_AFTER = 5  # seconds
UNAVAILABLE_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>503 Service Unavailable</title></head>
<body>
<h1>Service unavailable</h1>
<p>Ferryman cannot reach its database. Try again in a moment.</p>
<p lang="zh-CN">摆渡人暂时无法连接数据库，请稍后再试。</p>
</body>
</html>
"""


def _unavailable(page: bool) -> Response:
    """The answer while the database is out: JSON 503 for the API, a plain page for a page."""
    response: Response = (
        HTMLResponse(UNAVAILABLE_PAGE, status_code=503)
        if page
        else _error(503, "database_unavailable", DATABASE_UNAVAILABLE, {"retry_after": RETRY_AFTER})
    )
    response.headers["Retry-After"] = str(RETRY_AFTER)
    response.headers["Cache-Control"] = "no-store"
    return response


SWAGGER_UI = Path(str(swagger_ui_bundle.swagger_ui_path))
REDOC = Path(fastapi_offline.__file__).parent / "static"  # redoc.standalone.js
REDOC_CSP = (  # Redoc draws with inline styles and searches in a worker made from a blob
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)
DOCS_INIT = """window.addEventListener("load", function () {
  var node = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: node.getAttribute("data-url"),
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset]
  });
});
"""


class SecurityHeaders:
    """``nosniff`` and a same-origin referrer on every response; a CSP on ``/docs`` and
    ``/redoc``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        csp = (
            DOCS_CSP if path.startswith("/docs") else REDOC_CSP if path.startswith("/redoc") else ""
        )

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                wanted = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                ]
                if csp:
                    wanted += [(b"content-security-policy", csp.encode())]
                headers += [(k, v) for k, v in wanted if k not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def _redoc_page(root: str, openapi_url: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Ferryman — API reference</title>
</head>
<body>
<redoc spec-url="{html.escape(root + openapi_url)}"></redoc>
<script src="{html.escape(root)}/redoc/assets/redoc.standalone.js"></script>
</body>
</html>
"""


def _docs_page(root: str, openapi_url: str) -> str:
    assets = html.escape(f"{root}/docs/assets")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Ferryman — API</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui" data-url="{html.escape(root + openapi_url)}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{html.escape(root)}/docs/init.js"></script>
</body>
</html>
"""


class Pages(Protocol):
    """What the API needs of the web pages: mount them, tell a page request from an API one,
    and answer a page's error with a page (``web/routes.py``)."""

    def mount(self, app: FastAPI) -> None: ...

    def is_page(self, request: Request) -> bool: ...

    def error_page(self, request: Request, exc: FerrymanError) -> Response: ...


class NoPages:
    """An API without pages: every request is answered as the API answers."""

    def mount(self, app: FastAPI) -> None:
        return None

    def is_page(self, request: Request) -> bool:
        return False

    def error_page(self, request: Request, exc: FerrymanError) -> Response:
        raise AssertionError("no page is ever asked for")  # is_page is always False


def create_api(
    settings: Settings,
    db: Database | None = None,
    embedded_worker: bool | None = None,
    pages: Pages | None = None,
) -> FastAPI:
    """The API (and, with ``pages``, the web UI); ``ferryman.app.create_app`` is the server."""
    web = pages or NoPages()
    database = db or Database(settings.database_url)
    run_worker = settings.embedded_worker if embedded_worker is None else embedded_worker

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = None
        worker = None
        if run_worker:
            worker = Worker(database, settings)
            app.state.worker = worker
            task = asyncio.create_task(worker.run())
        try:
            yield
        finally:
            if worker is not None and task is not None:
                await worker.stop()  # drain: running deploys finish or stop safely
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(
        title="Ferryman",
        version=__version__,
        lifespan=lifespan,
        description="Self-hosted web deployment over SSH (摆渡人).",
        docs_url=None,  # ours below: assets from the package, not a CDN
        redoc_url=None,
    )
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders)  # outermost: a 413 gets the headers too
    app.state.db = database
    app.state.settings = settings
    app.state.worker = None
    app.include_router(router)
    app.mount("/docs/assets", StaticFiles(directory=SWAGGER_UI), name="docs-assets")
    app.mount("/redoc/assets", StaticFiles(directory=REDOC), name="redoc-assets")
    web.mount(app)

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return HTMLResponse(_docs_page(root, app.openapi_url or "/openapi.json"))

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return HTMLResponse(_redoc_page(root, app.openapi_url or "/openapi.json"))

    @app.get("/docs/init.js", include_in_schema=False)
    def docs_init() -> Response:
        return Response(DOCS_INIT, media_type="text/javascript")

    @app.exception_handler(FerrymanError)
    async def ferryman_error(request: Request, exc: FerrymanError) -> Response:
        if web.is_page(request):
            return web.error_page(request, exc)
        response = _error(
            exc.http_status, exc.code, str(exc), envelope.details_of(exc), said=exc.message
        )
        if exc.http_status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        retry = exc.details.get("retry_after")
        if exc.http_status == 429 and isinstance(retry, int | float):
            response.headers["Retry-After"] = str(max(1, int(retry)))
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> Response:
        errors = ["/".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in exc.errors()]
        if web.is_page(request):
            if any(tuple(e["loc"]) == ("body", "csrf") for e in exc.errors()):
                # a form without its token is refused as one with a wrong token: 403, before
                # anything is said of its other fields
                return web.error_page(request, CsrfFailed(STALE_FORM))
            return web.error_page(request, ValidationError("; ".join(errors)))
        items = envelope.from_validation(list(exc.errors()))  # objects: loc, code, message
        return _error(
            422, "invalid_input", "invalid request: " + "; ".join(errors), {"errors": items}
        )

    @app.exception_handler(StarletteHTTPException)
    async def framework_error(request: Request, exc: StarletteHTTPException) -> Response:
        shaped = envelope.framework_error(request.url.path, exc.status_code, str(exc.detail))
        if shaped is None and exc.status_code == 404 and web.is_page(request):
            # an address with no page: a page that says so, with the navigation
            return web.error_page(request, NotFound(f"no page at {request.url.path}"))
        if shaped is None:  # another page error: the framework's own answer, as before
            return await http_exception_handler(request, exc)
        return JSONResponse(shaped[1], status_code=shaped[0], headers=exc.headers)

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> Response:
        if not is_outage(exc):
            raise exc  # a mistake, not an outage: the usual 500
        return _unavailable(web.is_page(request))

    health.mount(app, database, settings)  # /healthz, /readyz, /metrics (observability/)

    return app
