"""The error envelope of the REST API, as the server sends it and as OpenAPI documents it:

    {"error": {"code": "not_found", "message": "no deploy #7", "details": {…}}}

``code`` is stable (``ferryman/errors.py``), ``message`` one sentence for people. Input errors
(``invalid_input``, ``config_invalid``) list each problem in ``details.errors`` as an object:
``loc`` (the path to the value: ``["body", "env"]``, ``["query", "limit"]``,
``["environments", "production", "hosts", 2]``), ``code`` (what kind of problem) and
``message``.

A message Ferryman can say in another language (made with ``said``) also carries its
``template`` (``%(name)s`` placeholders, the key of the message catalogue) and ``params`` (its
values; a value that is itself such a message is an object with its own ``template`` and
``params``): a client renders it from its own catalogue instead of matching the English."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ferryman.errors import ConfigError, FerrymanError
from ferryman.said import Said

TEMPLATE = (
    "the message's template (%(name)s placeholders): the key of the message catalogue, present "
    "when the message can be said in another language"
)
PARAMS = "the template's values; a value that is itself such a message is {template, params}"


class ErrorItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    loc: list[str | int] = Field(description="the path to the value at fault")
    code: str = Field(description="what kind of problem, e.g. missing, unknown_key")
    message: str
    template: str | None = Field(None, description=TEMPLATE)
    params: dict[str, Any] | None = Field(None, description=PARAMS)


class ErrorDetails(BaseModel):
    """Free-form context by error code (``retry_after``, ``holder``, ``approval`` …);
    ``errors`` on input errors."""

    model_config = ConfigDict(extra="allow")

    errors: list[ErrorItem] | None = None


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="stable: see the error codes in docs/api.md")
    message: str
    template: str | None = Field(
        None,
        description=TEMPLATE + " (of the message's first line: the lines of a "
        "config_invalid are in details.errors)",
    )
    params: dict[str, Any] | None = Field(None, description=PARAMS)
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


def said_parts(text: Any) -> dict[str, Any]:
    """``{"template", "params"}`` of a ``said`` message (to add beside its ``message``); {}
    for any other text."""
    if not isinstance(text, Said):
        return {}
    return {"template": text.template, "params": {k: _param(v) for k, v in text.values.items()}}


def _param(value: Any) -> Any:
    if isinstance(value, Said):
        return said_parts(value)
    if isinstance(value, list | tuple):
        return [_param(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)


PATH_FIRST = "%(path)s: "  # how a ``said`` line of a config error starts (config/project.py)


def _item_said(line: str, message: str) -> dict[str, Any]:
    """The template and params of an error line's ``message`` (the part after its path)."""
    if not isinstance(line, Said):
        return {}
    if not line.template.startswith(PATH_FIRST):
        return said_parts(line) if line == message else {}
    inner = line.values.get("message")
    if line.template == PATH_FIRST + "%(message)s" and isinstance(inner, Said):
        return said_parts(inner) if inner == message else {}
    rest = {k: v for k, v in line.values.items() if k != "path"}
    return said_parts(Said(line.template[len(PATH_FIRST) :], rest))


def _part(text: str) -> str | int:
    return int(text) if text.isdigit() else text


def from_lines(lines: list[str], code: str = "invalid") -> list[dict[str, Any]]:
    """``["path/to/key: message", …]`` (how a ``ConfigError`` lists them) as error items."""
    items: list[dict[str, Any]] = []
    for line in lines:
        path, sep, message = line.partition(": ")
        if not sep or " " in path:
            items.append({"loc": [], "code": code, "message": line, **_item_said(line, line)})
            continue
        loc: list[str | int] = [] if path == "(top level)" else [_part(p) for p in path.split("/")]
        kind = (
            "unknown_key"
            if message.startswith("unknown key")
            else "missing"
            if message == "required key missing"
            else code
        )
        items.append({"loc": loc, "code": kind, "message": message, **_item_said(line, message)})
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
        details["errors"] = from_lines(list(exc.errors))  # kept ``said``: item templates
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
