"""The FastAPI application: REST under /api/v1, OpenAPI at /docs, an embedded worker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from ferryman import __version__
from ferryman.api.routes import router
from ferryman.config.settings import Settings
from ferryman.db.session import Database
from ferryman.errors import FerrymanError, ValidationError
from ferryman.jobs.worker import Worker
from ferryman.web import routes as web


def _error(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={"error": {"code": code, "message": message, "details": details or {}}},
    )


def create_app(
    settings: Settings, db: Database | None = None, embedded_worker: bool | None = None
) -> FastAPI:
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
    )
    app.state.db = database
    app.state.settings = settings
    app.state.worker = None
    app.include_router(router)
    web.mount(app)

    @app.exception_handler(FerrymanError)
    async def ferryman_error(request: Request, exc: FerrymanError) -> Response:
        if web.is_page(request):
            return web.error_page(request, exc)
        headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
        response = _error(exc.http_status, exc.code, str(exc), exc.details)
        if headers:
            response.headers.update(headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> Response:
        errors = ["/".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in exc.errors()]
        if web.is_page(request):
            return web.error_page(request, ValidationError("; ".join(errors)))
        return _error(
            422, "invalid_input", "invalid request: " + "; ".join(errors), {"errors": errors}
        )

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
