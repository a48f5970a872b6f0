"""Slack incoming webhook: mrkdwn text with the link."""

from __future__ import annotations

from typing import Any

import httpx

from ferryman.notify.channels.base import post_json, url
from ferryman.notify.message import Message

KIND = "slack"
SECRET_KEYS = ("url",)


def check(settings: dict[str, Any]) -> None:
    url(settings)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def send(message: Message, settings: dict[str, Any], http: httpx.AsyncClient) -> None:
    text = f"*{_escape(message.title)}*\n{_escape(message.text)}"
    if message.link:
        text += f"\n<{message.link}|{_escape(message.link)}>"
    await post_json(http, url(settings), {"text": text})
