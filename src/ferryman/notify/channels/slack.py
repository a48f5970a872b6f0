"""Slack incoming webhook: mrkdwn text with the link."""

from __future__ import annotations

from typing import Any

from ferryman.notify.channels.base import check_url, post_json, url
from ferryman.notify.message import Message
from ferryman.outbound import Outbound

KIND = "slack"
SECRET_KEYS = ("url",)


def check(settings: dict[str, Any], out: Outbound) -> None:
    check_url(settings, out)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def send(message: Message, settings: dict[str, Any], out: Outbound) -> None:
    text = f"*{_escape(message.title)}*\n{_escape(message.text)}"
    if message.link:
        text += f"\n<{message.link}|{_escape(message.link)}>"
    await post_json(out, url(settings), {"text": text})
