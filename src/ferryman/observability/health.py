"""``/healthz``, ``/readyz`` and ``/metrics``.

``/healthz``: the process answers (never touches the database) — a liveness probe.

``/readyz``: this server can serve — a readiness probe, or a load balancer's check. 200 when
the database answers, its schema is the one this version needs (no migration pending), the
secret key opens the database's canary, and — where this server runs an embedded worker —
that worker wrote a heartbeat recently; 503 otherwise, with each check's answer. A database
outage is the usual JSON 503 ``database_unavailable``. Workers elsewhere are listed (how many
are alive) but never make this server unready: the ``ferryman_workers`` metric and its alert
watch them.

``/metrics``: Prometheus, with ``Authorization: Bearer $FERRYMAN_METRICS_TOKEN``
(``metrics.py``)."""

from __future__ import annotations

import functools
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy import select, text

from ferryman import __version__
from ferryman.config.settings import Settings
from ferryman.db.models import KeyValue
from ferryman.db.session import MIGRATIONS, Database
from ferryman.observability.metrics import CONTENT_TYPE_LATEST, CountPolls, Metrics, authorized
from ferryman.secretbox import CANARY
from ferryman.services import workers


class Health(BaseModel):
    status: str = "ok"
    version: str


class Ready(BaseModel):
    status: str  # "ready" or "not_ready"
    version: str
    checks: dict[str, str]  # database, migrations, secret_key, worker, workers: "ok" or why not


@functools.cache
def schema_heads() -> frozenset[str]:
    """The migration revisions this version of Ferryman needs (read once)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return frozenset(ScriptDirectory.from_config(cfg).get_heads())


def readiness(db: Database, worker: Any) -> Ready:
    """Check everything ``/readyz`` promises; a database outage raises (handled as 503)."""
    checks: dict[str, str] = {}
    with db.engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        current = set(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
    checks["database"] = "ok"
    heads = schema_heads()
    checks["migrations"] = (
        "ok"
        if current == heads
        else f"the database is at {', '.join(sorted(current)) or 'no revision'}; this version "
        f"needs {', '.join(sorted(heads))}: run `ferryman migrate`"
    )
    checks["secret_key"] = _key_check(db)
    if worker is not None:
        beat = worker.last_beat
        age = None if beat is None else time.monotonic() - beat
        checks["worker"] = (
            "ok"
            if age is not None and age <= workers.RECENT
            else "the embedded worker has written no heartbeat yet"
            if age is None
            else f"the embedded worker's last heartbeat is {age:.0f} s old"
        )
    alive = workers.alive(db)
    checks["workers"] = f"{len(alive)} alive" if alive else "none alive: deploys wait in the queue"
    ok = all(v == "ok" for k, v in checks.items() if k != "workers")
    return Ready(status="ready" if ok else "not_ready", version=__version__, checks=checks)


def _key_check(db: Database) -> str:
    from ferryman.errors import ConfigError

    with db.read() as s:
        canary = s.scalar(select(KeyValue.value).where(KeyValue.key == "key_check"))
    if canary is None:
        return "the database has no key check yet (start the server once with its key)"
    try:
        return "ok" if db.box.open(canary) == CANARY else "the secret key does not match"
    except ConfigError:
        return "the secret key does not match this database (FERRYMAN_SECRET_KEY or secret.key)"


def mount(app: FastAPI, db: Database, settings: Settings) -> None:
    """Add ``/healthz``, ``/readyz`` (both in OpenAPI) and ``/metrics`` to ``app``."""
    metrics = Metrics(db)
    app.add_middleware(CountPolls, metrics=metrics)

    @app.get("/healthz", response_model=Health, tags=["health"], summary="Liveness")
    def healthz() -> Health:
        """The process answers. Never touches the database: use it as a liveness probe."""
        return Health(version=__version__)

    @app.get(
        "/readyz",
        response_model=Ready,
        tags=["health"],
        summary="Readiness",
        responses={503: {"model": Ready, "description": "not ready (or the database is out)"}},
    )
    def readyz(request: Request) -> Response:
        """The database answers, its schema is current, the secret key matches, and the
        embedded worker (if any) beat recently; 503 otherwise, saying which check failed."""
        ready = readiness(db, request.app.state.worker)
        status = 200 if ready.status == "ready" else 503
        return JSONResponse(ready.model_dump(), status_code=status)

    @app.get("/metrics", include_in_schema=False)
    def metrics_page(request: Request) -> Response:
        token = settings.metrics_token
        if not token:
            return JSONResponse(
                {
                    "error": {
                        "code": "not_found",
                        "message": "metrics are off: set FERRYMAN_METRICS_TOKEN",
                        "details": {},
                    }
                },
                status_code=404,
            )
        if not authorized(request.headers.get("authorization", ""), token):
            return JSONResponse(
                {
                    "error": {
                        "code": "unauthenticated",
                        "message": "metrics need Authorization: Bearer FERRYMAN_METRICS_TOKEN",
                        "details": {},
                    }
                },
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
