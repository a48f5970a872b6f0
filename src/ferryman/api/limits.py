"""Bounded request bodies: an ASGI middleware that refuses a body past its route's limit with
``413 payload_too_large`` — when ``Content-Length`` says so before a byte is read, and while
reading a streamed (chunked) body, so the server never holds more than the limit of any
request. What is left of a refused body is drained and dropped by the HTTP server, not kept.

| requests | limit |
| --- | --- |
| a pull-mode host's report (``POST /api/v1/agent/{host}/report``) | 256 KiB |
| git webhooks (``/api/v1/hooks/…``) | 5 MiB |
| config files (``…/config/…`` in the API, the config page's form) | 4 MiB |
| other API bodies (JSON) | 1 MiB |
| other web forms | 2 MiB |

Routes that read bodies themselves (webhooks, agent reports) authenticate what they can from
the headers first; this bounds everything else, whose bodies FastAPI reads before running the
authentication dependency.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ferryman.errors import PayloadTooLarge

KiB = 1024
MiB = 1024 * KiB
AGENT_REPORT = 256 * KiB
WEBHOOK = 5 * MiB
CONFIG_FILE = 4 * MiB
API_JSON = 1 * MiB
FORM = 2 * MiB

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


def limit_for(path: str) -> int:
    """The largest body, in bytes, a request to ``path`` may send."""
    if path.startswith("/api/v1/agent/"):
        return AGENT_REPORT
    if path.startswith("/api/v1/hooks/"):
        return WEBHOOK
    if "/config/" in path or path.endswith("/config"):
        return CONFIG_FILE
    if path.startswith("/api/"):
        return API_JSON
    return FORM


def _human(limit: int) -> str:
    return f"{limit // MiB} MiB" if limit % MiB == 0 else f"{limit // KiB} KiB"


def too_large_response(limit: int) -> tuple[Message, Message]:
    """The two ASGI messages of the ``413`` answer, in the API's error shape."""
    error = PayloadTooLarge(f"the request body is larger than {_human(limit)}", limit=limit)
    body = json.dumps({"error": error.to_dict()}).encode()
    start: Message = {
        "type": "http.response.start",
        "status": error.http_status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    return start, {"type": "http.response.body", "body": body, "more_body": False}


class BodyLimit:
    """Refuse bodies past :func:`limit_for` with ``413``, declared or streamed."""

    def __init__(self, app: ASGIApp, limits: Callable[[str], int] = limit_for) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits(str(scope.get("path", "")))
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            for message in too_large_response(limit):
                await send(message)
            return
        received = 0
        exceeded = started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise PayloadTooLarge(f"the request body is larger than {_human(limit)}")
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise PayloadTooLarge(f"the request body is larger than {_human(limit)}")
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # whatever the app made of the refused body: ours goes out instead
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded or started:
                raise
        if exceeded and not started:
            for message in too_large_response(limit):
                await send(message)


def _content_length(scope: MutableMapping[str, Any]) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
