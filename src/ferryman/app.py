"""The whole server: the REST API with the web pages mounted on it — the one module that
joins ``api/`` and ``web/`` (neither imports the other: tests/test_layers.py)."""

from __future__ import annotations

from fastapi import FastAPI

from ferryman.api.app import create_api
from ferryman.config.settings import Settings
from ferryman.db.session import Database


def create_app(
    settings: Settings, db: Database | None = None, embedded_worker: bool | None = None
) -> FastAPI:
    """What ``ferryman serve`` runs: the API, its embedded worker and the web UI."""
    from ferryman.web import routes

    return create_api(settings, db, embedded_worker, pages=routes)
