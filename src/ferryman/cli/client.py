"""The CLI's REST client: server URL and token from FERRYMAN_URL / FERRYMAN_TOKEN or the file
written by ``ferryman login``. Every request has a timeout; errors become ``FerrymanError``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import platformdirs

from ferryman import errors

TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def _error_classes() -> dict[str, type[errors.FerrymanError]]:
    """Every error class by its stable code (RemoteError needs fields the API returns apart)."""
    found: dict[str, type[errors.FerrymanError]] = {}
    pending = [errors.FerrymanError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls not in (errors.FerrymanError, errors.RemoteError):
            found[cls.code] = cls
    return found


_BY_CODE = _error_classes()


def credentials_file() -> Path:
    return Path(platformdirs.user_config_dir("ferryman")) / "credentials.json"


def save_credentials(url: str, token: str, username: str) -> Path:
    path = credentials_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"url": url, "token": token, "username": username}, fh)
    return path


class Client:
    def __init__(self, url: str | None = None, token: str | None = None) -> None:
        stored: dict[str, str] = {}
        path = credentials_file()
        if path.exists():
            try:
                stored = json.loads(path.read_text())
            except (OSError, ValueError):
                stored = {}
        self.url = (url or os.environ.get("FERRYMAN_URL") or stored.get("url") or "").rstrip("/")
        self.token = token or os.environ.get("FERRYMAN_TOKEN") or stored.get("token") or ""
        if not self.url:
            raise errors.ConfigError(
                "no server: run `ferryman login --server URL` or set FERRYMAN_URL"
            )
        self.http = httpx.Client(base_url=self.url, timeout=TIMEOUT)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = self.http.request(method, "/api/v1" + path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise errors.FerrymanError(f"cannot reach {self.url}: {exc}") from None
        if response.status_code >= 400:
            raise _error_from(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, json=body, **kwargs)

    def patch(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request("PATCH", path, json=body, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request("PUT", path, json=body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)


def _error_from(response: httpx.Response) -> errors.FerrymanError:
    try:
        data = response.json()["error"]
        code, message, details = data["code"], data["message"], data.get("details") or {}
    except (ValueError, KeyError, TypeError):
        return errors.FerrymanError(
            f"server answered {response.status_code}: {response.text[:300]}"
        )
    cls = _BY_CODE.get(code)
    if code == "invalid_input" or cls is None:
        exc: errors.FerrymanError = (
            errors.ValidationError(message)
            if response.status_code in (400, 422)
            else errors.FerrymanError(message)
        )
    elif cls is errors.ConfigError:
        exc = errors.ConfigError(message.splitlines()[0], details.get("errors"))
    else:
        exc = cls(message)
    exc.details = details
    return exc


def error_for_status(status: int, message: str) -> errors.FerrymanError:
    """The error class for an HTTP status (WebSocket refusals carry only the status)."""
    for cls in (errors.AuthenticationFailed, errors.PermissionDenied, errors.NotFound):
        if cls.http_status == status:
            return cls(message)
    return errors.FerrymanError(message)
