"""Feishu / Lark custom bot: a ``post`` (rich text) message with a link; with a ``secret`` the
body carries ``timestamp`` (seconds) and ``sign`` = base64 of HMAC-SHA256 keyed with
"timestamp\\nsecret" over an empty message, as Feishu documents it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from ferryman.notify.channels.base import api_code, check_url, post_json, url
from ferryman.notify.message import Message
from ferryman.outbound import Outbound

KIND = "feishu"
SECRET_KEYS = ("url", "secret")


def check(settings: dict[str, Any], out: Outbound) -> None:
    check_url(settings, out)


def sign(secret: str, timestamp: int) -> str:
    digest = hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


async def send(message: Message, settings: dict[str, Any], out: Outbound) -> None:
    lines: list[list[dict[str, str]]] = [
        [{"tag": "text", "text": line}] for line in message.text.splitlines()
    ]
    if message.link:
        lines.append([{"tag": "a", "text": message.link, "href": message.link}])
    body: dict[str, Any] = {
        "msg_type": "post",
        "content": {"post": {"zh_cn": {"title": message.title, "content": lines}}},
    }
    if settings.get("secret"):
        stamp = int(time.time())
        body |= {"timestamp": str(stamp), "sign": sign(settings["secret"], stamp)}
    api_code(await post_json(out, url(settings), body), "code", "StatusCode")
