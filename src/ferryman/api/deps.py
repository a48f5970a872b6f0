"""Request dependencies: the database, settings, the authenticated actor (bearer token), and
``perm(action)``, which names each route's action of the permissions table in its OpenAPI entry
(``x-permission``). The services enforce that action; the matrix test reads the marker."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import APIRouter, Depends, Path, Request, WebSocket
from fastapi.requests import HTTPConnection
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ferryman.db.session import Database
from ferryman.domain.permissions import ACTIONS
from ferryman.errors import AuthenticationFailed, CsrfFailed, InternalError, ValidationError

# what routes and pages both need from a request lives in http_deps (one definition)
from ferryman.http_deps import DB as DB
from ferryman.http_deps import SESSION_COOKIE as SESSION_COOKIE
from ferryman.http_deps import ClientIp as ClientIp
from ferryman.http_deps import SettingsDep as SettingsDep
from ferryman.http_deps import client_ip as client_ip
from ferryman.http_deps import get_db as get_db
from ferryman.http_deps import get_settings as get_settings
from ferryman.http_deps import wake_worker as wake_worker
from ferryman.services import users
from ferryman.services.audit import Actor

bearer = HTTPBearer(auto_error=False, description="An API token from /api/v1/auth/login")


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
    _known(action)
    WEBSOCKET_ACTIONS["/api/v1" + (router.prefix or "") + path] = action
    return router.websocket(path)


def perm(action: str) -> dict[str, Any]:
    """``openapi_extra`` for a route: the action it performs (must be in the table)."""
    _known(action)
    return {"x-permission": action}


def _known(action: str) -> None:
    """A route names an action of the permissions table, or the server does not start."""
    if action not in ACTIONS:
        raise InternalError(
            f"route declares unknown action {action!r}: add it to domain/permissions.py"
        )


CurrentActor = Annotated[Actor, Depends(current_actor)]


def known_query_only(connection: HTTPConnection) -> None:
    """Refuse a query parameter the route does not declare (a typo like ``?stauts=failed``
    would otherwise be ignored and return everything): 422 ``invalid_input`` naming it.
    Routes outside the OpenAPI document (webhooks, pull-mode agents) and WebSockets are left
    alone: their callers are not ours to correct."""
    if connection.scope.get("type") != "http":
        return
    route = connection.scope.get("route")
    if route is None or not getattr(route, "include_in_schema", False):
        return
    declared = _query_names(route.dependant)
    unknown = sorted(set(connection.query_params) - declared)
    repeated = sorted(
        name
        for name in set(connection.query_params) - _query_names(route.dependant, lists=True)
        if len(connection.query_params.getlist(name)) > 1
    )
    if repeated and not unknown:  # ``?env=a&env=b`` would be read as b alone: say so
        raise ValidationError(
            f"query parameter given more than once: {', '.join(repeated)} (it takes one value)",
            errors=[
                {"loc": ["query", name], "code": "repeated", "message": "give it once"}
                for name in repeated
            ],
        )
    if unknown:
        raise ValidationError(
            f"unknown query parameter{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}"
            + (f" (known: {', '.join(sorted(declared))})" if declared else " (it takes none)"),
            errors=[
                {
                    "loc": ["query", name],
                    "code": "unknown_parameter",
                    "message": "not a "
                    f"parameter of {connection.scope.get('method', 'this')} {connection.url.path}",
                }
                for name in unknown
            ],
        )


def _query_names(dependant: Any, *, lists: bool = False) -> set[str]:
    """The query parameters a route's function and its dependencies declare (by alias);
    ``lists``: only those that take several values."""
    names = {
        str(param.alias)
        for param in dependant.query_params
        if not lists or _takes_several(param.field_info.annotation)
    }
    for sub in dependant.dependencies:
        names |= _query_names(sub, lists=lists)
    return names


def _takes_several(annotation: Any) -> bool:
    """Whether a parameter's type is a list (set, tuple, sequence), also inside ``X | None``
    or ``Annotated``."""
    origin = get_origin(annotation)
    if origin in (Union, UnionType, Annotated):
        return any(_takes_several(arg) for arg in get_args(annotation))
    return origin in (list, set, tuple, frozenset, Sequence) or annotation in (list, set, tuple)


# Ids in paths are bounded by the columns that hold them (32-bit on PostgreSQL and MariaDB):
# a larger number is a 422 naming it, never a database error.
MAX_ID = 2**31 - 1
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
