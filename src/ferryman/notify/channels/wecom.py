"""WeCom (企业微信) group robot: a Markdown message."""

from __future__ import annotations

from typing import Any

import httpx

from ferryman.notify.channels.base import api_code, post_json, url
from ferryman.notify.message import Message

KIND = "wecom"
SECRET_KEYS = ("url",)


def check(settings: dict[str, Any]) -> None:
    url(settings)


async def send(message: Message, settings: dict[str, Any], http: httpx.AsyncClient) -> None:
    body = {"msgtype": "markdown", "markdown": {"content": message.markdown}}
    api_code(await post_json(http, url(settings), body), "errcode")
