"""Filtered lists with real pagination: the filters a list page reads from its query, and the
link to the next page (an id cursor, so a page never shifts while new rows arrive)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

PAGE = 50


def since(text: str) -> datetime | None:
    """``2026-11-30`` (or a full ISO time) → that moment in UTC; anything else → no filter."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def next_page(path: str, filters: dict[str, str], rows: list[dict[str, Any]]) -> str:
    """The link to the rows after ``rows`` (``""`` when this page was not full)."""
    if len(rows) < PAGE:
        return ""
    kept = {k: v for k, v in filters.items() if v and k != "before"}
    return path + "?" + urlencode({**kept, "before": rows[-1]["id"]})


def first_page(path: str, filters: dict[str, str], paged: bool) -> str:
    """The link back to the newest rows with the same filters (``""`` on the first page)."""
    if not paged:
        return ""
    kept = {k: v for k, v in filters.items() if v and k != "before"}
    return path + ("?" + urlencode(kept) if kept else "")
