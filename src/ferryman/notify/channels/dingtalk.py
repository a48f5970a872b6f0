"""DingTalk group robot: a Markdown message; with a ``secret`` the URL carries ``timestamp``
(milliseconds) and ``sign`` = URL-encoded base64 of HMAC-SHA256(secret, "timestamp\\nsecret")."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any
from urllib.parse import quote_plus

from ferryman.notify.channels.base import api_code, check_url, post_json, url
from ferryman.notify.message import Message
from ferryman.outbound import Outbound

KIND = "dingtalk"
SECRET_KEYS = ("url", "secret")


def check(settings: dict[str, Any], out: Outbound) -> None:
    check_url(settings, out)


def sign(secret: str, timestamp_ms: int) -> str:
    digest = hmac.new(
        secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return quote_plus(base64.b64encode(digest))


async def send(message: Message, settings: dict[str, Any], out: Outbound) -> None:
    target = url(settings)
    if settings.get("secret"):
        stamp = int(time.time() * 1000)
        joiner = "&" if "?" in target else "?"
        target += f"{joiner}timestamp={stamp}&sign={sign(settings['secret'], stamp)}"
    body = {"msgtype": "markdown", "markdown": {"title": message.title, "text": message.markdown}}
    api_code(await post_json(out, target, body), "errcode")
