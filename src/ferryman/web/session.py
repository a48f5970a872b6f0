"""Who is using the web UI: the session cookie (the same sessions as the REST API), the CSRF
token every form carries, the current space and the role the page is rendered for."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from fastapi import Request

from ferryman.db.models import User
from ferryman.db.session import Database
from ferryman.domain import display_name as display_names
from ferryman.domain.permissions import Role, role_allows
from ferryman.errors import STALE_FORM, AuthenticationFailed, CsrfFailed, FerrymanError
from ferryman.http_deps import SESSION_COOKIE, client_ip
from ferryman.said import said
from ferryman.services import spaces, users
from ferryman.services.audit import Actor
from ferryman.services.authz import space_role
from ferryman.web import i18n, paths

SPACE_COOKIE = "ferryman_space"
FLASH_COOKIE = "ferryman_flash"


class LoginRequired(FerrymanError):
    """A page needs a signed-in user: the browser is sent to the login page."""

    code = "login_required"
    http_status = 401

    def __init__(self, next_path: str) -> None:
        super().__init__("sign in to continue")
        self.next_path = next_path


@dataclass
class Web:
    """Everything a page knows about its viewer."""

    lang: str
    actor: Actor | None = None
    csrf: str = ""
    spaces: list[dict[str, Any]] = field(default_factory=list)
    space: dict[str, Any] | None = None
    role: Role | None = None  # in the current space
    flash: str = ""
    zone: str = ""  # the IANA zone the viewer chose for times ('' = the browser's)

    @property
    def signed_in(self) -> bool:
        return self.actor is not None

    def can(self, action: str, role: Role | None = None) -> bool:
        """Whether the viewer may do ``action`` in the current space (or with ``role``,
        e.g. a project's override)."""
        if self.actor is None:
            return False
        if self.actor.is_superuser:
            return True
        return role_allows(role if role is not None else self.role, action)

    def login_url(self, path: str) -> str:
        return "/login?next=" + quote(path)

    def say(self, text: str) -> str:
        """A service's message (an error's, say) in the viewer's language where it was
        made with ``said``; as it is otherwise."""
        return str(i18n.say(self.lang, text))

    def _(self, text: str, **values: Any) -> str:
        """``text`` in the viewer's language (``%(name)s`` filled from ``values``)."""
        translated = i18n.translations(self.lang).gettext(text)
        return translated % values if values else translated


@dataclass
class Viewer(Web):
    """A signed-in viewer, as ``signed_in`` returns one: ``actor`` is always someone (an
    anonymous request never gets this far: ``signed_in`` sends it to the login page)."""

    actor: Actor


def language(request: Request, user_language: str = "") -> str:
    return i18n.choose(
        user_language,
        request.cookies.get(i18n.COOKIE),
        request.headers.get("accept-language", ""),
    )


def anonymous(request: Request) -> Web:
    return Web(lang=language(request))


def signed_in(request: Request, db: Database, space: str | None = None) -> Viewer:
    """The signed-in viewer (else ``LoginRequired``), with the spaces they see and the
    current one: ``space`` from the URL, else the last one used, else the first."""
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        raise LoginRequired(paths.here(request))
    try:
        actor, csrf = users.actor_for_session(db, secret, client_ip(request))
    except AuthenticationFailed:
        raise LoginRequired(paths.here(request)) from None
    with db.read() as s:
        user = s.get(User, actor.id)
        user_language = user.language if user else ""
        zone = user.time_zone if user else ""
    web = Viewer(lang=language(request, user_language), actor=actor, csrf=csrf, zone=zone)
    web.spaces = spaces.list_spaces(db, actor)
    shown_as = display_names.labels([(x["name"], x["display_name"]) for x in web.spaces])
    for entry in web.spaces:  # two spaces that read the same are told apart by their slug
        entry["label"] = shown_as[entry["name"]]
    wanted = space or request.cookies.get(SPACE_COOKIE)
    chosen = next((x for x in web.spaces if x["name"] == wanted), None)
    if space is not None and chosen is None:
        from ferryman.errors import NotFound

        raise NotFound(said("no space %(space)s", space=repr(space)))
    web.space = chosen or (web.spaces[0] if web.spaces else None)
    if web.space is not None:
        with db.read() as s:
            web.role = space_role(s, actor, web.space["id"])
    web.flash = unquote(request.cookies.get(FLASH_COOKIE, ""))[:300]
    return web


def check_csrf(web: Web, sent: str | None) -> None:
    """Every form posts the session's CSRF token back."""
    if not sent or not web.csrf or not secrets.compare_digest(sent, web.csrf):
        raise CsrfFailed(STALE_FORM)
