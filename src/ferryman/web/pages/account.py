"""Signing in and out, the language, your password and tokens; users (superusers)."""

from __future__ import annotations

from functools import cache
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from ferryman.errors import FerrymanError, PermissionDenied
from ferryman.http_deps import DB, SESSION_COOKIE, client_ip
from ferryman.services import users
from ferryman.web import i18n
from ferryman.web.render import page, redirect, set_cookie
from ferryman.web.session import anonymous, check_csrf, signed_in

router = APIRouter()
Text = Annotated[str, Form()]
Csrf = Annotated[str, Form()]
SESSION_DAYS = 7


def _safe_next(target: str) -> str:
    """Only paths of this site (no ``//host``, no scheme)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@cache
def _zones() -> tuple[str, ...]:
    return tuple(users.time_zones())


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return page(request, anonymous(request), "login.html", next=_safe_next(next), error="")


@router.post("/login", response_model=None)
def login(
    request: Request,
    db: DB,
    username: Text,
    password: Text,
    next: Annotated[str, Form()] = "/",
) -> Response:
    web = anonymous(request)
    try:
        secret, _csrf = users.start_session(db, username, password, ip=client_ip(request))
    except FerrymanError as exc:
        refused = page(
            request,
            web,
            "login.html",
            status=exc.http_status,
            next=_safe_next(next),
            error=web._("Wrong user name or password.") if exc.http_status == 401 else exc.message,
            username=username,
        )
        if "retry_after" in exc.details:
            refused.headers["Retry-After"] = str(int(exc.details["retry_after"]))
        return refused
    response = redirect(request, _safe_next(next))
    set_cookie(request, response, SESSION_COOKIE, secret, max_age=SESSION_DAYS * 86400)
    return response


@router.post("/logout", response_model=None)
def logout(request: Request, db: DB, csrf: Csrf) -> Response:
    web = signed_in(request, db)
    check_csrf(web, csrf)
    users.end_session(db, web.actor, request.cookies.get(SESSION_COOKIE))
    response = redirect(request, "/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/language", response_model=None)
def set_language(
    request: Request, db: DB, lang: Text, back: Annotated[str, Form()] = "/", csrf: str = Form("")
) -> Response:
    """Switch the language: remembered in the account when signed in, in a cookie before."""
    if lang not in i18n.SUPPORTED:
        lang = i18n.DEFAULT
    if request.cookies.get(SESSION_COOKIE):
        web = signed_in(request, db)
        check_csrf(web, csrf)
        users.set_language(db, web.actor, lang)
    response = redirect(request, _safe_next(back))
    set_cookie(request, response, i18n.COOKIE, lang, max_age=365 * 86400)
    return response


@router.get("/account", response_class=HTMLResponse)
def account(request: Request, db: DB) -> HTMLResponse:
    web = signed_in(request, db)
    tokens = users.list_tokens(db, web.actor)
    return page(
        request, web, "account.html", tokens=tokens, new_token=None, error="", zones=_zones()
    )


@router.post("/account/time-zone", response_model=None)
def set_time_zone(
    request: Request, db: DB, csrf: Csrf, zone: Annotated[str, Form()] = ""
) -> Response:
    """The zone the UI shows this user's times in ('' = the browser's)."""
    web = signed_in(request, db)
    check_csrf(web, csrf)
    try:
        users.set_time_zone(db, web.actor, zone)
    except FerrymanError as exc:
        return redirect(request, "/account", web.say(exc.message))
    return redirect(request, "/account", web._("Time zone saved."))


@router.post("/account/password", response_model=None)
def change_password(
    request: Request, db: DB, csrf: Csrf, old: Text, new: Text, again: Text
) -> Response:
    web = signed_in(request, db)
    check_csrf(web, csrf)
    current = request.cookies.get(SESSION_COOKIE)
    error, renewed = "", None
    if new != again:
        error = web._("The new passwords differ.")
    else:
        try:
            renewed = users.change_password(
                db, web.actor, old, new, keep_session=current, renew=True
            )
        except FerrymanError as exc:
            error = exc.message
    if error:
        tokens = users.list_tokens(db, web.actor)
        return page(
            request,
            web,
            "account.html",
            status=422,
            tokens=tokens,
            new_token=None,
            error=error,
            zones=_zones(),
        )
    # every other session and token has ended; this one goes on under a new cookie secret
    response = redirect(request, "/account", web._("Password changed."))
    if renewed:
        set_cookie(request, response, SESSION_COOKIE, renewed, max_age=SESSION_DAYS * 86400)
    return response


@router.post("/account/tokens", response_class=HTMLResponse)
def create_token(
    request: Request,
    db: DB,
    csrf: Csrf,
    name: Text,
    write: Annotated[bool, Form()] = False,
    days: Annotated[int | None, Form()] = None,
) -> HTMLResponse:
    """The token is shown on this page once, never again."""
    web = signed_in(request, db)
    check_csrf(web, csrf)
    scopes = ["read", "write"] if write else ["read"]
    made = users.create_token(db, web.actor, name, scopes, expires_in_days=days or None)
    tokens = users.list_tokens(db, web.actor)
    return page(
        request, web, "account.html", tokens=tokens, new_token=made, error="", zones=_zones()
    )


@router.post("/account/tokens/{token_id}/revoke", response_model=None)
def revoke_token(request: Request, db: DB, token_id: int, csrf: Csrf) -> Response:
    web = signed_in(request, db)
    check_csrf(web, csrf)
    users.revoke_token(db, web.actor, token_id)
    return redirect(request, "/account", web._("Token revoked."))


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, db: DB) -> HTMLResponse:
    web = signed_in(request, db)
    if not web.actor.is_superuser:
        raise PermissionDenied(web._("Only superusers manage users."))
    return page(request, web, "users.html", users=users.list_users(db, web.actor), error="")


@router.post("/users", response_model=None)
def create_user(
    request: Request,
    db: DB,
    csrf: Csrf,
    username: Text,
    password: Text,
    email: Annotated[str, Form()] = "",
    superuser: Annotated[bool, Form()] = False,
) -> Response:
    web = signed_in(request, db)
    check_csrf(web, csrf)
    try:
        users.create_user(db, username, password, email=email, superuser=superuser, actor=web.actor)
    except FerrymanError as exc:
        if exc.http_status in (401, 403, 404):
            raise
        rows = users.list_users(db, web.actor)
        return page(
            request, web, "users.html", status=exc.http_status, users=rows, error=exc.message
        )
    return redirect(request, "/users", web._("User %(name)s created.", name=username))


@router.post("/users/{username}", response_model=None)
def update_user(
    request: Request,
    db: DB,
    username: str,
    csrf: Csrf,
    action: Text,
    password: Annotated[str, Form()] = "",
) -> Response:
    web = signed_in(request, db)
    check_csrf(web, csrf)
    choices: dict[str, dict[str, object]] = {
        "disable": {"is_active": False},
        "enable": {"is_active": True},
        "grant": {"is_superuser": True},
        "revoke": {"is_superuser": False},
        "password": {"password": password},
    }
    changes = choices.get(action, {})
    users.update_user(
        db,
        web.actor,
        username,
        keep_session=request.cookies.get(SESSION_COOKIE),
        **changes,  # type: ignore[arg-type]
    )
    return redirect(request, "/users", web._("User %(name)s updated.", name=username))
