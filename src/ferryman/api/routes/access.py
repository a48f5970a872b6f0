"""Signing in, the current user, users (superusers manage them) and personal API tokens."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from ferryman.api.deps import DB, SESSION_COOKIE, ClientIp, CurrentActor, SettingsDep, perm
from ferryman.api.schemas import (
    LoginBody,
    PasswordBody,
    SessionBody,
    TokenBody,
    UserCreateBody,
    UserUpdateBody,
)
from ferryman.services import users

router = APIRouter()


@router.post("/auth/login", tags=["auth"], openapi_extra=perm("auth.login"))
def login(body: LoginBody, db: DB, ip: ClientIp) -> dict[str, str]:
    """Exchange a user name and password for an API token (shown once). Failed attempts are
    rate-limited per user name and per address (429)."""
    token = users.login(
        db,
        body.username,
        body.password,
        body.token_name,
        ip=ip,
        expires_in_days=body.expires_in_days,
    )
    return {"token": token, "username": body.username}


@router.post("/auth/session", tags=["auth"], openapi_extra=perm("auth.login"))
def start_session(
    body: SessionBody, db: DB, ip: ClientIp, request: Request, response: Response
) -> dict[str, str]:
    """Sign in for a browser: sets an HttpOnly, SameSite=Lax session cookie and returns the
    CSRF token that requests changing anything must send in ``X-CSRF-Token``."""
    secret, csrf = users.start_session(db, body.username, body.password, ip=ip)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(users.SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return {"username": body.username, "csrf_token": csrf}


@router.delete("/auth/session", status_code=204, tags=["auth"], openapi_extra=perm("auth.logout"))
def end_session(db: DB, actor: CurrentActor, request: Request) -> Response:
    users.end_session(db, actor, request.cookies.get(SESSION_COOKIE))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/me", tags=["auth"], openapi_extra=perm("me.read"))
def me(actor: CurrentActor) -> dict[str, Any]:
    return {
        "id": actor.id,
        "username": actor.username,
        "is_superuser": actor.is_superuser,
        "scopes": sorted(actor.scopes),
    }


@router.post("/me/password", status_code=204, tags=["auth"], openapi_extra=perm("me.password"))
def change_password(body: PasswordBody, db: DB, actor: CurrentActor) -> Response:
    users.change_password(db, actor, body.old_password, body.new_password)
    return Response(status_code=204)


@router.get("/ssh-key", tags=["system"], openapi_extra=perm("me.read"))
def ssh_key(settings: SettingsDep, actor: CurrentActor) -> dict[str, str]:
    """The server's public key: add it to ``authorized_keys`` on every target host."""
    return {"public_key": settings.ssh_key.with_suffix(".pub").read_text().strip()}


@router.get("/users", tags=["users"], openapi_extra=perm("user.list"))
def list_users(db: DB, actor: CurrentActor) -> list[dict[str, Any]]:
    return users.list_users(db, actor)


@router.post("/users", status_code=201, tags=["users"], openapi_extra=perm("user.manage"))
def create_user(body: UserCreateBody, db: DB, actor: CurrentActor) -> dict[str, Any]:
    created = users.create_user(
        db,
        body.username,
        body.password,
        superuser=body.is_superuser,
        email=body.email,
        actor=actor,
    )
    return {"id": created.id, "username": created.username, "is_superuser": created.is_superuser}


@router.patch("/users/{user}", tags=["users"], openapi_extra=perm("user.manage"))
def update_user(user: str, body: UserUpdateBody, db: DB, actor: CurrentActor) -> dict[str, Any]:
    """Disable or enable (disabling revokes their tokens), grant or drop superuser, reset the
    password, set the e-mail address."""
    return users.update_user(db, actor, user, **body.model_dump(exclude_unset=True))


@router.get("/tokens", tags=["tokens"], openapi_extra=perm("token.read"))
def list_tokens(db: DB, actor: CurrentActor) -> list[dict[str, Any]]:
    return users.list_tokens(db, actor)


@router.post("/tokens", status_code=201, tags=["tokens"], openapi_extra=perm("token.manage"))
def create_token(body: TokenBody, db: DB, actor: CurrentActor) -> dict[str, Any]:
    """A personal token with scopes (``read``, ``write``) and an optional expiry; the secret is
    in this response only."""
    return users.create_token(db, actor, body.name, body.scopes, body.expires_in_days)


@router.delete(
    "/tokens/{token_id}", status_code=204, tags=["tokens"], openapi_extra=perm("token.manage")
)
def revoke_token(token_id: int, db: DB, actor: CurrentActor) -> Response:
    users.revoke_token(db, actor, token_id)
    return Response(status_code=204)
