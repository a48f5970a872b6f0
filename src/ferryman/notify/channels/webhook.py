"""A generic webhook: a JSON body with a stable schema (``schema: 1``) and, with a ``secret``,
``X-Ferryman-Signature: sha256=<hex HMAC-SHA256 of the body>``."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from ferryman.notify.channels.base import check_url, post, url
from ferryman.notify.message import Message
from ferryman.outbound import Outbound

KIND = "webhook"
SECRET_KEYS = ("url", "secret")


def check(settings: dict[str, Any], out: Outbound) -> None:
    check_url(settings, out)


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


async def send(message: Message, settings: dict[str, Any], out: Outbound) -> None:
    body = body_of(message)
    headers = {"Content-Type": "application/json", "X-Ferryman-Event": message.event}
    if settings.get("secret"):
        headers["X-Ferryman-Signature"] = signature(settings["secret"], body)
    await post(out, url(settings), content=body, headers=headers)
