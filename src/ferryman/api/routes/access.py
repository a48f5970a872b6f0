"""Signing in, the current user, users (superusers manage them) and personal API tokens."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from ferryman.api.deps import (
    DB,
    SESSION_COOKIE,
    ClientIp,
    CurrentActor,
    Id,
    SettingsDep,
    perm,
    presented_credentials,
)
from ferryman.api.envelope import RATE_LIMITED
from ferryman.api.paging import Page, PerPage, page_of, paged
from ferryman.api.schemas import (
    LoginBody,
    PasswordBody,
    SessionBody,
    TokenBody,
    UserCreateBody,
    UserUpdateBody,
)
from ferryman.api.team_views import LoginToken, Me, PublicKey, SessionStarted, Token, User
from ferryman.errors import RateLimited
from ferryman.keys import public_line
from ferryman.services import users

router = APIRouter()


def _limited(exc: RateLimited) -> JSONResponse:
    """A refused sign-in: the usual error body, and ``Retry-After`` saying when to come back."""
    seconds = int(exc.details.get("retry_after", 1))
    return JSONResponse(
        status_code=exc.http_status,
        content={"error": exc.to_dict()},
        headers={"Retry-After": str(seconds)},
    )


@router.post(
    "/auth/login",
    tags=["auth"],
    openapi_extra=perm("auth.login"),
    responses=RATE_LIMITED,
    response_model=LoginToken,
)
def login(body: LoginBody, db: DB, ip: ClientIp) -> dict[str, str] | JSONResponse:
    """Exchange a user name and password for an API token (shown once). Failed attempts are
    limited per user name and address, per user name and per address: past a few, each
    further attempt must wait longer (429 with ``Retry-After``)."""
    try:
        token = users.login(
            db,
            body.username,
            body.password,
            body.token_name,
            ip=ip,
            expires_in_days=body.expires_in_days,
        )
    except RateLimited as exc:
        return _limited(exc)
    return {"token": token, "username": body.username}


@router.post(
    "/auth/session",
    tags=["auth"],
    openapi_extra=perm("auth.login"),
    responses=RATE_LIMITED,
    response_model=SessionStarted,
)
def start_session(
    body: SessionBody, db: DB, ip: ClientIp, request: Request, response: Response
) -> dict[str, str] | JSONResponse:
    """Sign in for a browser: sets an HttpOnly, SameSite=Lax session cookie and returns the
    CSRF token that requests changing anything must send in ``X-CSRF-Token``."""
    try:
        secret, csrf = users.start_session(db, body.username, body.password, ip=ip)
    except RateLimited as exc:
        return _limited(exc)
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


@router.get("/me", response_model=Me, tags=["auth"], openapi_extra=perm("me.read"))
def me(actor: CurrentActor) -> dict[str, Any]:
    return {
        "id": actor.id,
        "username": actor.username,
        "is_superuser": actor.is_superuser,
        "scopes": sorted(actor.scopes),
    }


@router.post("/me/password", status_code=204, tags=["auth"], openapi_extra=perm("me.password"))
def change_password(body: PasswordBody, db: DB, actor: CurrentActor, request: Request) -> Response:
    """Every other token and session of yours is revoked; the one this request came with is
    kept."""
    token, session = presented_credentials(request)
    users.change_password(
        db, actor, body.old_password, body.new_password, keep_token=token, keep_session=session
    )
    return Response(status_code=204)


@router.get(
    "/ssh-key",
    response_model=PublicKey,
    response_model_exclude_unset=True,
    tags=["system"],
    openapi_extra=perm("me.read"),
)
def ssh_key(settings: SettingsDep, actor: CurrentActor) -> dict[str, str]:
    """The server's public key: add it to ``authorized_keys`` on every target host."""
    return {"public_key": public_line(settings.ssh_key)}


@router.get(
    "/users",
    response_model=list[User],
    response_model_exclude_unset=True,
    tags=["users"],
    openapi_extra=perm("user.list") | paged("users"),
)
def list_users(
    db: DB,
    actor: CurrentActor,
    request: Request,
    response: Response,
    page: Page = 1,
    per_page: PerPage = 100,
) -> list[dict[str, Any]]:
    """Superusers: every user. Anyone else: the users who share a space with them."""
    return page_of(request, response, users.list_users(db, actor), page, per_page)


@router.post(
    "/users",
    status_code=201,
    response_model=User,
    response_model_exclude_unset=True,
    tags=["users"],
    openapi_extra=perm("user.manage"),
)
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


@router.patch(
    "/users/{user}",
    response_model=User,
    response_model_exclude_unset=True,
    tags=["users"],
    openapi_extra=perm("user.manage"),
)
def update_user(
    user: str, body: UserUpdateBody, db: DB, actor: CurrentActor, request: Request
) -> dict[str, Any]:
    """Disable or enable, grant or drop superuser, reset the password, set the e-mail
    address. Disabling or a password reset revokes every token and session of that user."""
    token, session = presented_credentials(request)
    return users.update_user(
        db,
        actor,
        user,
        **body.model_dump(exclude_unset=True),
        keep_token=token,
        keep_session=session,
    )


@router.get(
    "/tokens",
    response_model=list[Token],
    response_model_exclude_unset=True,
    tags=["tokens"],
    openapi_extra=perm("token.read") | paged("tokens"),
)
def list_tokens(
    db: DB,
    actor: CurrentActor,
    request: Request,
    response: Response,
    page: Page = 1,
    per_page: PerPage = 100,
) -> list[dict[str, Any]]:
    return page_of(request, response, users.list_tokens(db, actor), page, per_page)


@router.post(
    "/tokens",
    status_code=201,
    response_model=Token,
    response_model_exclude_unset=True,
    tags=["tokens"],
    openapi_extra=perm("token.manage"),
)
def create_token(body: TokenBody, db: DB, actor: CurrentActor) -> dict[str, Any]:
    """A personal token with scopes (``read``, ``write``) and an optional expiry; the secret is
    in this response only."""
    return users.create_token(db, actor, body.name, body.scopes, body.expires_in_days)


@router.delete(
    "/tokens/{token_id}", status_code=204, tags=["tokens"], openapi_extra=perm("token.manage")
)
def revoke_token(token_id: Id, db: DB, actor: CurrentActor) -> Response:
    users.revoke_token(db, actor, token_id)
    return Response(status_code=204)
