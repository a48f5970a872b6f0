"""What every channel shares: settings checks and the HTTP post with a clear error."""

from __future__ import annotations

from typing import Any

import httpx

from ferryman.errors import ValidationError

TIMEOUT = 10.0


class DeliveryFailed(Exception):
    """The channel did not take the message (said why)."""


def url(settings: dict[str, Any], key: str = "url") -> str:
    value = str(settings.get(key, ""))
    if not value.startswith(("https://", "http://")):
        raise ValidationError(f"{key}: an http(s) URL")
    return value


async def post_json(http: httpx.AsyncClient, target: str, body: Any, **kw: Any) -> httpx.Response:
    try:
        response = await http.post(target, json=body, timeout=TIMEOUT, **kw)
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None
    if response.status_code >= 300:
        raise DeliveryFailed(f"HTTP {response.status_code}: {response.text[:200]}")
    return response


def api_code(response: httpx.Response, *keys: str) -> None:
    """IM robots answer 200 with an error code in the body: 0 is success."""
    try:
        data = response.json()
    except ValueError:
        return
    for key in keys:
        if isinstance(data, dict) and key in data and data[key] not in (0, "0"):
            raise DeliveryFailed(f"{key} {data[key]}: {data.get('errmsg') or data.get('msg')}")
