"""Review (session 8): two workers starting the hourly retention run at once
(``services/retention.claim_run``), checked and found sound.

The first run of a database has no ``retention.next_run`` row yet: each worker reads none and
inserts one; the one whose insert loses must stand down (False) without raising — a raise
would be logged by its worker as "a retention run failed" where nothing had failed — and
leave the winner's claim as it is.

Made deterministic without a mock: just before the loser's insert is flushed, the other
worker's insert is committed on a connection of its own (a ``before_flush`` hook of the
test's), on every database the tests have."""

from __future__ import annotations

from sqlalchemy import event, insert, select
from sqlalchemy.orm import Session

from ferryman.db.models import KeyValue
from ferryman.db.session import Database
from ferryman.services import retention


def _migrated(db_url: str) -> Database:
    db = Database(db_url)
    db.upgrade()
    return db


def test_the_worker_that_loses_the_first_retention_claim_stands_down_quietly(db_url: str):
    db = _migrated(db_url)
    raced: list[bool] = []

    def the_other_worker_first(session: Session, *_: object) -> None:
        if raced or not any(isinstance(o, KeyValue) for o in session.new):
            return
        raced.append(True)
        with db.engine.begin() as other:  # the other worker's claim, committed first
            other.execute(
                insert(KeyValue).values(key=retention.CLAIM, value="9999-12-31T00:00:00.000000")
            )

    try:
        event.listen(Session, "before_flush", the_other_worker_first)
        try:
            outcome: object
            try:
                outcome = retention.claim_run(db)
            except Exception as exc:  # what the worker's loop logs as a failed run
                outcome = exc
        finally:
            event.remove(Session, "before_flush", the_other_worker_first)
        assert raced == [True]
        assert outcome is False, f"the losing claim raised {outcome!r}"
        with db.read() as s:  # the winner's claim stands, untouched
            assert s.scalar(select(KeyValue.value).where(KeyValue.key == retention.CLAIM)) == (
                "9999-12-31T00:00:00.000000"
            )
    finally:
        db.dispose()  # its pool's connections closed now, not when collected
