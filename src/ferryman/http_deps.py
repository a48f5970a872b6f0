"""What every HTTP route of the server needs from its request — the REST API's (``api/``) and
the web pages' (``web/``) alike: the database, the settings, the client's address, the session
cookie's name, and waking the embedded worker. Both import it from here, never from each
other; how each side authenticates stays its own (bearer tokens in ``api/deps.py``, page
sessions in ``web/session.py``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ferryman.config.settings import Settings
from ferryman.db.session import Database

# The cookie of a browser session (made by ``POST /api/v1/auth/session`` or the sign-in page).
SESSION_COOKIE = "ferryman_session"


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def wake_worker(request: Request) -> None:
    """A deploy was queued by this process: its embedded worker starts it without polling."""
    worker = getattr(request.app.state, "worker", None)
    if worker is not None:
        worker.wake()


DB = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ClientIp = Annotated[str, Depends(client_ip)]
