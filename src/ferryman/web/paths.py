"""The web UI behind a path prefix (``ferryman serve --root-path /ferryman``).

Pages, redirects and templates speak in *route paths*, absolute from the application's own
``/`` (``/s/ops/deploys/7``). What leaves for the browser gets the prefix the proxy serves
the application under, in exactly two places: the ``Location`` of a redirect
(``render.redirect``) and the URL-bearing attributes of a rendered page (``prefixed``).
Jinja escapes every attribute value, so a value can never hold the quote that ends it and
the attributes rewritten here are exactly the ones the templates wrote.
"""

from __future__ import annotations

import re

from fastapi import Request

# the attributes whose values are addresses of this application (the page scripts read the
# data-* ones to fetch, post or open the console's stream)
URL_ATTRIBUTES = (
    "href",
    "action",
    "src",
    "formaction",
    "data-stream",
    "data-refs",
    "data-detect",
    "data-ssh-check",
    "data-for",
)
_ROOTED = re.compile(r"(\s(?:" + "|".join(URL_ATTRIBUTES) + r')=")/(?!/)')


def root(request: Request) -> str:
    """The prefix the application is served under, without a trailing ``/`` ('' for none)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def route_path(request: Request) -> str:
    """The request's path without the prefix: what the application's routes match."""
    path = request.url.path
    prefix = root(request)
    if prefix and (path == prefix or path.startswith(prefix + "/")):
        return path[len(prefix) :] or "/"
    return path


def here(request: Request) -> str:
    """The route path with its query: where a form sends the viewer back to."""
    query = f"?{request.url.query}" if request.url.query else ""
    return route_path(request) + query


def location(request: Request, url: str) -> str:
    """A redirect's target for the browser: a route path gets the prefix."""
    if url.startswith("/") and not url.startswith("//"):
        return root(request) + url
    return url


def prefixed(html: str, prefix: str) -> str:
    """``html`` with every route path in a URL-bearing attribute under ``prefix``."""
    if not prefix:
        return html
    return _ROOTED.sub(lambda m: m.group(1) + prefix + "/", html)
