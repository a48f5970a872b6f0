"""WeCom (企业微信) group robot: a Markdown message."""

from __future__ import annotations

from typing import Any

from ferryman.notify.channels.base import api_code, check_url, post_json, url
from ferryman.notify.message import Message
from ferryman.outbound import Outbound

KIND = "wecom"
SECRET_KEYS = ("url",)


def check(settings: dict[str, Any], out: Outbound) -> None:
    check_url(settings, out)


async def send(message: Message, settings: dict[str, Any], out: Outbound) -> None:
    body = {"msgtype": "markdown", "markdown": {"content": message.markdown}}
    api_code(await post_json(out, url(settings), body), "errcode")
