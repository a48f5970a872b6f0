"""The error envelope of the REST API, as the server sends it and as OpenAPI documents it:

    {"error": {"code": "not_found", "message": "no deploy #7", "details": {…}}}

``code`` is stable (``ferryman/errors.py``), ``message`` one sentence for people. Input errors
(``invalid_input``, ``config_invalid``) list each problem in ``details.errors`` as an object:
``loc`` (the path to the value: ``["body", "env"]``, ``["query", "limit"]``,
``["environments", "production", "hosts", 2]``), ``code`` (what kind of problem) and
``message``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ferryman.errors import ConfigError, FerrymanError


class ErrorItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    loc: list[str | int] = Field(description="the path to the value at fault")
    code: str = Field(description="what kind of problem, e.g. missing, unknown_key")
    message: str


class ErrorDetails(BaseModel):
    """Free-form context by error code (``retry_after``, ``holder``, ``approval`` …);
    ``errors`` on input errors."""

    model_config = ConfigDict(extra="allow")

    errors: list[ErrorItem] | None = None


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="stable: see the error codes in docs/api.md")
    message: str
    details: ErrorDetails


class ErrorEnvelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error: ErrorBody


def _documented(what: str) -> dict[str, Any]:
    return {"model": ErrorEnvelope, "description": what}


# What every route may answer besides its success (``routes/__init__.py`` adds them all).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _documented("not signed in, or the token expired or was revoked (`unauthenticated`)"),
    403: _documented(
        "the role or the token's scope does not allow it (`forbidden`, `insufficient_scope`, "
        "`approval_required`, `own_ticket`, `csrf_failed`)"
    ),
    404: _documented("no such resource, or not in any of your spaces (`not_found`)"),
    409: _documented(
        "the state forbids it (`conflict`, `lock_held`, `invalid_transition`, `too_early`, "
        "`approval_stale`)"
    ),
    422: _documented(
        "bad input (`invalid_input`: details.errors names each field; `config_invalid`)"
    ),
    503: _documented(
        "the database is unavailable; try again after Retry-After (`database_unavailable`)"
    ),
}
# Sign-in routes also answer 429 with Retry-After after repeated failures.
RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: _documented("too many failed sign-ins: wait Retry-After seconds (`rate_limited`)")
}


def _part(text: str) -> str | int:
    return int(text) if text.isdigit() else text


def from_lines(lines: list[str], code: str = "invalid") -> list[dict[str, Any]]:
    """``["path/to/key: message", …]`` (how a ``ConfigError`` lists them) as error items."""
    items: list[dict[str, Any]] = []
    for line in lines:
        path, sep, message = line.partition(": ")
        if not sep or " " in path:
            items.append({"loc": [], "code": code, "message": line})
            continue
        loc: list[str | int] = [] if path == "(top level)" else [_part(p) for p in path.split("/")]
        kind = (
            "unknown_key"
            if message.startswith("unknown key")
            else "missing"
            if message == "required key missing"
            else code
        )
        items.append({"loc": loc, "code": kind, "message": message})
    return items


def from_validation(errors: list[Any]) -> list[dict[str, Any]]:
    """FastAPI's request validation errors as error items (``code``: pydantic's type)."""
    return [
        {
            "loc": [p if isinstance(p, int) else str(p) for p in e["loc"]],
            "code": str(e["type"]),
            "message": str(e["msg"]),
        }
        for e in errors
    ]


def details_of(exc: FerrymanError) -> dict[str, Any]:
    """An error's ``details`` as sent: a ``ConfigError``'s lines become error items."""
    details = dict(exc.details)
    if isinstance(exc, ConfigError) and exc.errors:
        details["errors"] = from_lines([str(e) for e in exc.errors])
    return details


_BY_STATUS = {
    400: "invalid_input",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def framework_error(path: str, status: int, detail: str) -> tuple[int, dict[str, Any]] | None:
    """The envelope for an error the framework raised itself under ``/api/`` (no route for
    the path or the method; a body that is not even text): ``(status, body)``, or None for
    a path outside the API (the pages answer those their own way). A body the server cannot
    parse is a 422 ``invalid_input`` like any other bad input."""
    if not path.startswith("/api/"):
        return None
    if status == 400:
        status = 422
        item = {"loc": ["body"], "code": "body_unreadable", "message": detail}
        return status, {
            "error": {"code": "invalid_input", "message": detail, "details": {"errors": [item]}}
        }
    code = _BY_STATUS.get(status, "error")
    if status == 404:
        detail = f"no such address: {path}"
    return status, {"error": {"code": code, "message": detail, "details": {}}}
