"""What every channel shares: settings checks, the destination check and the HTTP post through
the pinned address (``ferryman.outbound``), and errors that keep no more of an answer than a
status line: a receiver's body is never stored or logged (it may be an internal service's)."""

from __future__ import annotations

import re
from typing import Any

import httpx

from ferryman.errors import ValidationError
from ferryman.outbound import Outbound, Refused, Reply, Unresolved
from ferryman.said import said

TIMEOUT = 10.0
MESSAGE_CHARS = 100  # of an IM API's own error message (errmsg / msg) kept in a record


class DeliveryFailed(Exception):
    """The channel did not take the message (said why, in one short line)."""


def url(settings: dict[str, Any], key: str = "url") -> str:
    value = str(settings.get(key, ""))
    if not value.startswith(("https://", "http://")):
        raise ValidationError(said("%(field)s: an http(s) URL", field=key))
    return value


def check_url(settings: dict[str, Any], out: Outbound, key: str = "url") -> None:
    """An http(s) URL whose host resolves only to addresses requests may reach. A name that
    does not resolve now is accepted (an offline install, a DNS hiccup): each delivery resolves
    and checks it again before connecting."""
    try:
        out.check_url(url(settings, key), key)
    except Unresolved:
        pass


def short(text: object, limit: int = MESSAGE_CHARS) -> str:
    """One line of printable text, at most ``limit`` characters."""
    return re.sub(r"[^\x20-\x7e\u00a0-\uffff]+", " ", str(text)).strip()[:limit]


def transport_error(exc: Exception) -> DeliveryFailed:
    """A failed connection, named by its kind; nothing the far end sent is kept."""
    if isinstance(exc, Refused):
        return DeliveryFailed(exc.message)
    if isinstance(exc, httpx.ConnectError):
        return DeliveryFailed(
            said("could not connect (%(error)s: %(why)s)", error=type(exc).__name__, why=short(exc))
        )
    if isinstance(exc, httpx.TimeoutException):
        return DeliveryFailed(
            said("no answer in time (%(error)s: %(why)s)", error=type(exc).__name__, why=short(exc))
        )
    return DeliveryFailed(type(exc).__name__)


def status_error(reply: Reply) -> DeliveryFailed:
    """``HTTP 500``, plus the IM API's own short error message when it sent one."""
    line = f"HTTP {reply.status}"
    if 300 <= reply.status < 400:
        return DeliveryFailed(
            said("HTTP %(status)s (redirects are not followed)", status=reply.status)
        )
    answer = _said(reply)
    return DeliveryFailed(f"{line}: {answer}" if answer else line)


def _said(reply: Reply) -> str:
    try:
        data = reply.json()
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    said = data.get("errmsg") or data.get("msg")
    return short(said) if isinstance(said, str) else ""


async def post(out: Outbound, target: str, **kw: Any) -> Reply:
    try:
        reply = await out.post(target, timeout=TIMEOUT, **kw)
    except (httpx.HTTPError, Refused) as exc:
        raise transport_error(exc) from None
    if reply.status >= 300:
        raise status_error(reply)
    return reply


async def post_json(out: Outbound, target: str, body: Any) -> Reply:
    return await post(out, target, json=body)


def api_code(reply: Reply, *keys: str) -> None:
    """IM robots answer 200 with an error code in the body: 0 is success."""
    try:
        data = reply.json()
    except ValueError:
        return
    for key in keys:
        if isinstance(data, dict) and key in data and data[key] not in (0, "0"):
            answer = _said(reply)
            raise DeliveryFailed(
                f"{key} {short(data[key], 20)}" + (f": {answer}" if answer else "")
            )
