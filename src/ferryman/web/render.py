"""Rendering pages: one Jinja2 environment per language (the gettext catalogue installed in
it), the context every page shares, and the filters the templates use."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import BytecodeCache, Environment, FileSystemLoader, select_autoescape
from jinja2.bccache import Bucket
from markupsafe import Markup

from ferryman import __version__
from ferryman.domain import display_name
from ferryman.web import i18n, paths
from ferryman.web.session import FLASH_COOKIE, SPACE_COOKIE, Web

TEMPLATES = Path(__file__).parent / "templates"


def _when(value: str | datetime | None) -> str:
    """ISO time → ``2026-11-22 05:40:12`` (UTC), for tables; the page script localises it."""
    if not value:
        return "-"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.1f}s"
    minutes, seconds = divmod(int(value), 60)
    return f"{minutes}m{seconds:02d}s"


def _short(commit: str | None) -> str:
    return (commit or "")[:10]


def _json(value: Any) -> Markup:
    """JSON safe to place inside a ``<script type=application/json>`` element: ``<``, ``>``
    and ``&`` written as JSON escapes, so no text in it (a hook's stderr with ``<!--<script>``
    or ``</script>``) can end the element or change how the browser reads the rest of the
    page; ``JSON.parse`` reads the same values."""
    text = (
        json.dumps(value, ensure_ascii=False)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )
    return Markup(text)  # noqa: S704 - escaped for a script element above


class _Compiled(BytecodeCache):
    """Compiled templates, shared by the languages' environments in this process: a template
    compiles to the same code in every language (the catalogue is a global of its
    environment), so the second language loads what the first compiled. A template whose
    source changed is compiled again (the bucket checks its checksum)."""

    def __init__(self) -> None:
        self.code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        if bucket.key in self.code:
            bucket.bytecode_from_string(self.code[bucket.key])

    def dump_bytecode(self, bucket: Bucket) -> None:
        self.code[bucket.key] = bucket.bytecode_to_string()


_COMPILED = _Compiled()


@cache
def environment(lang: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        bytecode_cache=_COMPILED,
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=lambda value: i18n.say(lang, value),  # a service's ``said`` message
    )
    env.install_gettext_translations(i18n.translations(lang), newstyle=True)  # type: ignore[attr-defined]
    env.filters.update(when=_when, seconds=_seconds, short=_short, json=_json)
    env.filters["label"] = lambda value: i18n.label(lang, str(value))
    # the longest display name the services take: the inputs say so before a refusal does
    env.globals.update(
        version=__version__, languages=i18n.NAMES, display_name_limit=display_name.LIMIT
    )
    return env


def warm() -> None:
    """Compile every template in every language now, as the server starts, so that no
    viewer's first request of a page waits for it (docs/benchmarks.md, "Web UI pages")."""
    for lang in i18n.SUPPORTED:
        env = environment(lang)
        for template in sorted(TEMPLATES.glob("*.html")):
            env.get_template(template.name)


def page(
    request: Request, web: Web, template: str, status: int = 200, **context: Any
) -> HTMLResponse:
    html = (
        environment(web.lang)
        .get_template(template)
        .render(
            request=request,
            web=web,
            here=paths.route_path(request),
            back=paths.here(request),
            **context,
        )
    )
    response = HTMLResponse(paths.prefixed(html, paths.root(request)), status_code=status)
    if web.flash:
        response.delete_cookie(FLASH_COOKIE)
    if web.space is not None:
        set_cookie(request, response, SPACE_COOKIE, web.space["name"])
    if is_https(request):
        response.headers["Strict-Transport-Security"] = "max-age=31536000"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
        "object-src 'none'"
    )
    return response


def redirect(request: Request, url: str, flash: str = "") -> RedirectResponse:
    """After a form: go to ``url`` (303, so a reload does not post again), saying ``flash``.
    A route path gets the prefix the application is served under."""
    response = RedirectResponse(paths.location(request, url), status_code=303)
    if flash:
        set_cookie(request, response, FLASH_COOKIE, quote(flash[:300]))
    return response


def is_https(request: Request) -> bool:
    return (
        request.url.scheme == "https"
        or request.headers.get("x-forwarded-proto", "").lower() == "https"
    )


def set_cookie(
    request: Request, response: Response, name: str, value: str, max_age: int | None = None
) -> None:
    """Every cookie of the UI: ``HttpOnly``, ``SameSite=Lax``, ``Secure`` over HTTPS."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=is_https(request),
        path="/",
    )
