"""The database's clock, for everything several processes compare: leases, locks, claims.

Workers and servers may run on different machines whose clocks differ by seconds or minutes.
A lease written with one worker's clock and judged with another's is taken over too early
(the run is still alive: two workers on one fleet) or too late. Every expiry is therefore
written and compared in the one clock all of them share, the database's. SQLite is a file on
this machine: its clock is this machine's.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from ferryman.db.models import utcnow

_NOW = {
    "postgresql": "SELECT CAST(statement_timestamp() AT TIME ZONE 'UTC' AS timestamp)",
    "mysql": "SELECT UTC_TIMESTAMP(6)",
    "mariadb": "SELECT UTC_TIMESTAMP(6)",
}


def db_now(s: Session) -> datetime:
    """Now, in UTC, by the clock of the database ``s`` talks to."""
    query = _NOW.get(s.get_bind().dialect.name)
    if query is None:
        return utcnow()
    value = s.scalar(text(query))
    if not isinstance(value, datetime):
        raise TypeError(f"the database's clock answered {value!r}")
    return value.replace(tzinfo=UTC)
