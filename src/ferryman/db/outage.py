"""Telling a database outage from a mistake: what is worth retrying, and what is not.

An outage is the server being unreachable, restarting or dropping connections (PostgreSQL
down or restarting, MariaDB "gone away", a connection reset) or a transaction that lost a
race it can win next time (a deadlock, a lock wait timeout, SQLite busy). A constraint
violation, a missing table or a syntax error is not: retrying it would only repeat it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")
FIRST_WAIT = 0.2
LONGEST_WAIT = 3.0

# MariaDB/MySQL client and server error numbers that mean "try again"
_MYSQL_TRANSIENT = {
    1040,  # too many connections
    1053,  # server shutdown in progress
    1205,  # lock wait timeout
    1213,  # deadlock
    1927,  # connection killed
    2002,  # cannot connect (socket)
    2003,  # cannot connect (TCP)
    2006,  # server has gone away
    2013,  # lost connection during query
    2014,  # commands out of sync after a lost connection
    2055,  # lost connection at reading
}
# PostgreSQL SQLSTATE classes and codes that mean "try again"
_PG_TRANSIENT_CLASSES = ("08", "53", "57P")  # connection, resources, operator intervention
_PG_TRANSIENT_CODES = {"40001", "40P01"}  # serialization failure, deadlock
_SQLITE_TRANSIENT = (
    "database is locked",
    "database table is locked",
    "disk i/o error",
    "unable to open database file",
)


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` (anything raised by a database call) is worth retrying later."""
    if not isinstance(exc, DBAPIError):
        return False
    if is_lost_race(exc):
        return True
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)  # psycopg
    if isinstance(sqlstate, str) and sqlstate:
        return sqlstate in _PG_TRANSIENT_CODES or sqlstate.startswith(_PG_TRANSIENT_CLASSES)
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):  # PyMySQL: (errno, message)
        return args[0] in _MYSQL_TRANSIENT
    if isinstance(exc, OperationalError):
        text = str(orig).lower()
        if "sqlite" in type(orig).__module__:
            return text.startswith(_SQLITE_TRANSIENT)
        return True  # a driver's connection failure without a code (refused, timed out)
    return isinstance(exc, InterfaceError)  # a closed or broken connection


_MYSQL_LOST_RACE = {1213}  # deadlock: InnoDB rolled the whole transaction back
_PG_LOST_RACE = {"40001", "40P01"}
LOST_RACE_ATTEMPTS = 5


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it was raised from or while handling, innermost last."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_lost_race(exc: BaseException) -> bool:
    """Whether ``exc`` ended a transaction that lost a race with another one (a deadlock, a
    serialization failure) — also when it surfaces as a later error: after MariaDB rolled a
    deadlocked transaction back, releasing its savepoint fails with "SAVEPOINT does not
    exist", raised while handling the deadlock."""
    for cause in _causes(exc):
        if not isinstance(cause, DBAPIError):
            continue
        orig = cause.orig
        sqlstate = getattr(orig, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate in _PG_LOST_RACE:
            return True
        args = getattr(orig, "args", ())
        if args and isinstance(args[0], int) and args[0] in _MYSQL_LOST_RACE:
            return True
    return False


def retries_lost_races(fn: Callable[P, T]) -> Callable[P, T]:
    """A whole unit of work (a function that opens its own transaction) run again when its
    transaction lost a race: the database undid all of it, so running it again is safe and
    gives the answer the loser should have had (the winner's ``Conflict``, say)."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        attempt = 1
        while True:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if attempt >= LOST_RACE_ATTEMPTS or not is_lost_race(exc):
                    raise
                log.info("%s lost a race (%s); trying again", fn.__name__, type(exc).__name__)
            time.sleep(random.uniform(0.01, 0.05) * attempt)
            attempt += 1

    return run


async def retry_through_outages(
    check: Callable[[], None] | None, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """``fn(*args, **kwargs)`` in a thread, again and again (backoff 0.2 s to 3 s) while the
    database is out; ``check()`` before each try may raise to give up (the deploy is no
    longer ours). A mistake that is not an outage is raised at once."""
    wait = FIRST_WAIT
    while True:
        if check is not None:
            check()
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning("the database is out (%s); retrying in %.1fs", type(exc).__name__, wait)
        await asyncio.sleep(wait)
        wait = min(wait * 2, LONGEST_WAIT)


async def retried(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``retry_through_outages`` for a call that fences itself (a conditional outcome, a lock
    release by its owner): retried until the database answers."""
    return await retry_through_outages(None, fn, *args, **kwargs)
