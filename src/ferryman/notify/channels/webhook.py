"""A generic webhook: a JSON body with a stable schema (``schema: 1``) and, with a ``secret``,
``X-Ferryman-Signature: sha256=<hex HMAC-SHA256 of the body>``."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx

from ferryman.notify.channels.base import TIMEOUT, DeliveryFailed, url
from ferryman.notify.message import Message

KIND = "webhook"
SECRET_KEYS = ("url", "secret")


def check(settings: dict[str, Any]) -> None:
    url(settings)


def body_of(message: Message) -> bytes:
    payload = {
        "schema": 1,
        "event": message.event,
        "title": message.title,
        "text": message.text,
        "link": message.link,
        "data": message.fields,
    }
    return json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def send(message: Message, settings: dict[str, Any], http: httpx.AsyncClient) -> None:
    body = body_of(message)
    headers = {"Content-Type": "application/json", "X-Ferryman-Event": message.event}
    if settings.get("secret"):
        headers["X-Ferryman-Signature"] = signature(settings["secret"], body)
    try:
        response = await http.post(url(settings), content=body, headers=headers, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None
    if response.status_code >= 300:
        raise DeliveryFailed(f"HTTP {response.status_code}: {response.text[:200]}")
