"""Request dependencies: the database, settings, the authenticated actor (bearer token), and
``perm(action)``, which names each route's action of the permissions table in its OpenAPI entry
(``x-permission``). The services enforce that action; the matrix test reads the marker."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, WebSocket
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ferryman.config.settings import Settings
from ferryman.db.session import Database
from ferryman.domain.permissions import ACTIONS
from ferryman.errors import AuthenticationFailed, CsrfFailed
from ferryman.services import users
from ferryman.services.audit import Actor

bearer = HTTPBearer(auto_error=False, description="An API token from /api/v1/auth/login")


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


SESSION_COOKIE = "ferryman_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def presented_credentials(request: Request) -> tuple[str | None, str | None]:
    """(bearer token, session secret) this request authenticated with — the one of the two
    ``current_actor`` used; the other is None."""
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None, None
    return None, request.cookies.get(SESSION_COOKIE) or None


def current_actor(
    request: Request,
    db: Annotated[Database, Depends(get_db)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    """A bearer token (CLI, scripts) or a session cookie (browsers). A cookie-authenticated
    request that changes anything must echo the session's CSRF token in ``X-CSRF-Token``."""
    ip = client_ip(request)
    if credentials is not None:
        return users.actor_for_token(db, credentials.credentials, ip)
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        raise AuthenticationFailed("missing bearer token: run `ferryman login` first")
    actor, csrf = users.actor_for_session(db, secret, ip)
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not secrets.compare_digest(sent, csrf):
            raise CsrfFailed(f"missing or wrong {CSRF_HEADER} header for a session request")
    return actor


def websocket_actor(websocket: WebSocket, db: Database) -> Actor:
    """The same credentials as REST: a bearer token (header), or a session cookie — which,
    since browsers send cookies cross-site, is only accepted from a page of this server (the
    Origin header must match the Host)."""
    ip = websocket.client.host if websocket.client else ""
    header = websocket.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return users.actor_for_token(db, header[7:].strip(), ip)
    secret = websocket.cookies.get(SESSION_COOKIE)
    if not secret:
        raise AuthenticationFailed("missing bearer token: run `ferryman login` first")
    origin = websocket.headers.get("origin", "")
    host = websocket.headers.get("host", "")
    if not origin or origin.split("://", 1)[-1] != host:
        raise CsrfFailed("a session WebSocket must come from a page of this server")
    actor, _csrf = users.actor_for_session(db, secret, ip)
    return actor


# WebSocket routes and their actions (they are not in the OpenAPI document).
WEBSOCKET_ACTIONS: dict[str, str] = {}


def websocket_route(
    router: APIRouter, path: str, action: str
) -> Callable[[Callable[..., Awaitable[None]]], Callable[..., Awaitable[None]]]:
    """``router.websocket(path)``, recording the action it is authorised as."""
    assert action in ACTIONS, action
    WEBSOCKET_ACTIONS["/api/v1" + (router.prefix or "") + path] = action
    return router.websocket(path)


def wake_worker(request: Request) -> None:
    """A deploy was queued by this process: its embedded worker starts it without polling."""
    worker = getattr(request.app.state, "worker", None)
    if worker is not None:
        worker.wake()


def perm(action: str) -> dict[str, Any]:
    """``openapi_extra`` for a route: the action it performs (must be in the table)."""
    assert action in ACTIONS, action
    return {"x-permission": action}


DB = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
CurrentActor = Annotated[Actor, Depends(current_actor)]
ClientIp = Annotated[str, Depends(client_ip)]
