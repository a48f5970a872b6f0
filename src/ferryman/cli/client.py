"""The CLI's REST client: server URL and token from FERRYMAN_URL / FERRYMAN_TOKEN or the file
written by ``ferryman login``. Every request has a timeout; errors become ``FerrymanError``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from ferryman import errors

if TYPE_CHECKING:  # httpx is imported by the first request, not by `ferryman --help`
    import ssl

    import httpx

TIMEOUT = 30.0  # seconds for a whole request
CONNECT_TIMEOUT = 10.0


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


# The server chosen for this run by the global ``--server`` option (``cli/main.py``).
SELECTED: dict[str, str] = {}


def credentials_file() -> Path:
    return Path(platformdirs.user_config_dir("ferryman")) / "credentials.json"


def _normal(url: str) -> str:
    return url.strip().rstrip("/")


def stored_credentials() -> dict[str, Any]:
    """``{"default": URL, "servers": {URL: {"token", "username"}}}``. A file written by the
    first release (one server: ``{"url", "token", "username"}``) reads as that one server."""
    path = credentials_file()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"default": "", "servers": {}}
    if not isinstance(data, dict):
        return {"default": "", "servers": {}}
    if "servers" not in data and data.get("url"):
        url = _normal(str(data["url"]))
        entry = {"token": data.get("token", ""), "username": data.get("username", "")}
        return {"default": url, "servers": {url: entry}}
    servers = data.get("servers") if isinstance(data.get("servers"), dict) else {}
    return {"default": str(data.get("default") or ""), "servers": servers}


def _write(data: dict[str, Any]) -> Path:
    path = credentials_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    return path


def save_credentials(url: str, token: str, username: str) -> Path:
    """Add (or replace) the token for ``url`` beside the others; it becomes the default."""
    data = stored_credentials()
    url = _normal(url)
    data["servers"][url] = {"token": token, "username": username}
    data["default"] = url
    return _write(data)


def forget_credentials(url: str) -> bool:
    """Drop the token for ``url``; whether there was one. The default moves to another."""
    data = stored_credentials()
    url = _normal(url)
    if data["servers"].pop(url, None) is None:
        return False
    if data["default"] == url:
        data["default"] = next(iter(sorted(data["servers"])), "")
    _write(data)
    return True


# The clients made since the last ``close_opened``: the CLI closes them when its command ends
# (cli/main.py), their connections with them, not whenever they are collected (commands
# also run in a long-lived process: the tests' CliRunner).
_OPENED: list[Client] = []


def close_opened() -> None:
    while _OPENED:
        _OPENED.pop().close()


class Client:
    """The server is ``url``, else the global ``--server``, else ``FERRYMAN_URL``, else the
    default of the credentials file; the token is ``token``, else ``FERRYMAN_TOKEN``, else
    the one stored for that server."""

    def __init__(self, url: str | None = None, token: str | None = None) -> None:
        stored = stored_credentials()
        chosen = url or SELECTED.get("url") or os.environ.get("FERRYMAN_URL") or stored["default"]
        self.url = _normal(chosen or "")
        entry = stored["servers"].get(self.url) or {}
        self.token = token or os.environ.get("FERRYMAN_TOKEN") or entry.get("token") or ""
        if not self.url:
            raise errors.ConfigError(
                "no server: run `ferryman login --server URL` or set FERRYMAN_URL"
            )
        if token is None and not self.token and stored["servers"]:
            known = ", ".join(sorted(stored["servers"]))
            raise errors.ConfigError(
                f"not logged in to {self.url}: run `ferryman login --server {self.url}` "
                f"(logged in to: {known})"
            )
        import httpx

        self.http = httpx.Client(
            base_url=self.url,
            timeout=httpx.Timeout(TIMEOUT, connect=CONNECT_TIMEOUT),
            verify=_tls_context(self.url),
        )
        _OPENED.append(self)

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

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


def _tls_context(url: str) -> ssl.SSLContext | bool:
    """How the client checks a server's certificate: the system's and certifi's authorities
    (httpx's default) for an https server. For an http server no certificate is ever checked,
    and loading the authorities costs every command ~0.03 CPU-s: a context that trusts no one
    (an https request through it would fail, never pass unchecked)."""
    if url.lower().startswith("https://"):
        return True
    import ssl

    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, against no authority at all


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
        exc = errors.ConfigError(message.splitlines()[0], _lines(details.get("errors")))
    else:
        exc = cls(message)
    exc.details = details
    return exc


def _lines(items: Any) -> list[str]:
    """``details.errors`` (objects: loc, code, message) as the ``path: message`` lines the
    CLI prints; plain strings (older servers) as they are."""
    out = []
    for item in items or []:
        if isinstance(item, dict):
            path = "/".join(str(p) for p in item.get("loc") or []) or "(top level)"
            out.append(f"{path}: {item.get('message', '')}")
        else:
            out.append(str(item))
    return out


def error_for_status(status: int, message: str) -> errors.FerrymanError:
    """The error class for an HTTP status (WebSocket refusals carry only the status)."""
    for cls in (errors.AuthenticationFailed, errors.PermissionDenied, errors.NotFound):
        if cls.http_status == status:
            return cls(message)
    return errors.FerrymanError(message)
