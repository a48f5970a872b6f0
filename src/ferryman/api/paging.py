"""Pagination of list routes, the way GitHub and GitLab do it: the body stays the list it
always was (old clients keep working), and the headers carry the rest —
``Link: <…?before=ID>; rel="next"`` for the next page (a cursor: the last id of this page,
so rows added meanwhile never shift a page) and ``X-Total-Count``, every row the filters
match."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query, Request, Response
from pydantic import BeforeValidator

TOTAL = "X-Total-Count"
Page = Annotated[int, Query(ge=1, le=2**31 - 1, description="the page, from 1")]
PerPage = Annotated[int, Query(ge=1, le=500, description="rows a page (at most 500)")]


def paged(what: str) -> dict[str, Any]:
    """``openapi_extra`` that documents the paging headers of a list of ``what``."""
    return {
        "responses": {
            "200": {
                "headers": {
                    "Link": {
                        "description": f'rel="next": the next page of {what} (absent on the '
                        "last page)",
                        "schema": {"type": "string"},
                    },
                    TOTAL: {
                        "description": f"how many {what} the filters match, on every page",
                        "schema": {"type": "integer"},
                    },
                }
            }
        }
    }


def paginate(
    request: Request,
    response: Response,
    rows: list[dict[str, Any]],
    limit: int,
    total: int,
    cursor: str = "before",
) -> None:
    """Set the paging headers for a page of ``rows`` (newest first, by ``id``)."""
    response.headers[TOTAL] = str(total)
    if len(rows) == limit and rows:
        url = request.url.include_query_params(**{cursor: rows[-1]["id"]})
        response.headers["Link"] = f'<{url}>; rel="next"'


def page_of(
    request: Request, response: Response, rows: list[Any], page: int, per_page: int
) -> list[Any]:
    """One page of a list the service returns whole (spaces, users, servers …: hundreds at
    most), numbered from 1 as GitLab does: ``X-Total-Count`` and, unless it is the last,
    ``Link: <…?page=N+1>; rel="next"``."""
    response.headers[TOTAL] = str(len(rows))
    start = (page - 1) * per_page
    if start + per_page < len(rows):
        url = request.url.include_query_params(page=page + 1, per_page=per_page)
        response.headers["Link"] = f'<{url}>; rel="next"'
    return rows[start : start + per_page]


def iso_only(value: Any) -> Any:
    """A time in a query is ISO 8601 (``2026-11-30`` or ``2026-11-30T09:00:00Z``); pydantic
    alone would also take ``0.5`` as seconds since 1970, which no one means in a filter."""
    if isinstance(value, str) and not _ISO.match(value):
        raise ValueError("an ISO 8601 date or time, like 2026-11-30T09:00:00Z")
    return value


_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")
IsoTime = Annotated[datetime | None, BeforeValidator(iso_only)]
