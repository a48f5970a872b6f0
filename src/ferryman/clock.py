"""This process's clock, in UTC (what several processes compare uses the database's clock
instead: ``db.clock``)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
