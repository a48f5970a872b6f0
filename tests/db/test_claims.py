"""The one claim of every queue (``db/claims.py``), on SQLite, PostgreSQL and MariaDB: two
claimers never both hold a row; a lease that ran out is taken over; a claim that was lost
can neither renew its lease nor finish its row. A table of the test's own, declared the way
each queue declares its table."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ferryman.db import claims
from ferryman.db.clock import db_now
from ferryman.db.models import UTCDateTime
from ferryman.db.outage import is_lost_race, is_outage
from ferryman.db.session import Database


class _Base(DeclarativeBase):
    pass


class Job(_Base):
    __tablename__ = "claims_test_jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str] = mapped_column(String(200), default="")
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    result: Mapped[str] = mapped_column(String(32), default="")
    last_period: Mapped[str] = mapped_column(String(16), default="")


# held in the state it waits in (like post-deploy watches)
SAME = claims.Queue(Job, ready=("waiting",), held="waiting", due="due_at")
# moved to a state of its own while held (like notification deliveries)
MOVED = claims.Queue(Job, ready=("waiting",), held="working", due="due_at")


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    _Base.metadata.create_all(database.engine)
    yield database
    database.dispose()


def _add(db: Database, count: int, due_in: float = -1.0) -> list[int]:
    with db.transaction() as s:
        now = db_now(s)
        rows = [Job(due_at=now + timedelta(seconds=due_in)) for _ in range(count)]
        s.add_all(rows)
        s.flush()
        return [row.id for row in rows]


def _claim(db: Database, q: claims.Queue, worker: str, lease: float) -> list[claims.Claim]:
    with db.transaction() as s:
        return claims.claim_due(s, q, worker, lease, limit=100)


def _row(db: Database, row_id: int) -> Job:
    with db.read() as s:
        row = s.get(Job, row_id)
        assert row is not None
        return row


def test_two_claimers_never_both_hold_a_row(db_url: str, db: Database) -> None:
    ids = _add(db, 40)
    claimers = [Database(db_url) for _ in range(3)]
    start = threading.Barrier(len(claimers))
    got: list[list[claims.Claim]] = [[] for _ in claimers]
    errors: list[BaseException] = []

    def claimer(i: int) -> None:
        start.wait(timeout=30)
        while True:
            try:
                with claimers[i].transaction() as s:
                    taken = claims.claim_due(s, MOVED, f"w{i}", 60, limit=3)
            except Exception as exc:  # a lost race or SQLite's one writer: rolled back, again
                if not (is_lost_race(exc) or is_outage(exc)):
                    errors.append(exc)
                    return
                continue
            if not taken:
                return
            got[i].extend(taken)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(len(claimers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for each in claimers:
        each.dispose()
    assert not errors
    claimed = [c.id for mine in got for c in mine]
    assert sorted(claimed) == sorted(ids)  # every row claimed, none twice
    for c in (c for mine in got for c in mine):
        row = _row(db, c.id)
        assert (row.status, row.claimed_by) == ("working", c.holder)
    assert _claim(db, MOVED, "late", 60) == []


def test_a_row_is_claimed_only_when_due_and_gets_a_lease_in_the_databases_clock(
    db: Database,
) -> None:
    later, now_ = _add(db, 1, due_in=3600), _add(db, 1)
    [claim] = _claim(db, SAME, "w1", 60)
    assert claim.id == now_[0] and claim.holder.startswith("w1~")
    with db.read() as s:
        clock = db_now(s)
    assert clock < claim.lease_until <= clock + timedelta(seconds=60)
    assert _row(db, later[0]).claimed_by == ""
    assert _claim(db, SAME, "w2", 60) == []  # held, and the other is not due


def test_an_expired_lease_is_taken_over_by_a_new_claim(db: Database) -> None:
    for q in (SAME, MOVED):
        [row_id] = _add(db, 1)
        [first] = _claim(db, q, "w1", -1)  # a lease that has already run out: its worker died
        [second] = _claim(db, q, "w2", 60)
        assert second.id == row_id == first.id
        assert second.holder != first.holder and second.holder.startswith("w2~")
        assert _row(db, row_id).claimed_by == second.holder
        assert _claim(db, q, "w3", 60) == []  # the new lease holds
        with db.transaction() as s:  # done with, out of the way of the next queue's turn
            assert claims.finish(s, q, row_id, second.holder, {"status": "done"}, keep_holder=True)


def test_the_same_worker_claiming_again_gets_a_new_token_and_the_old_one_is_fenced(
    db: Database,
) -> None:
    [row_id] = _add(db, 1)
    [old] = _claim(db, SAME, "w1", -1)
    [new] = _claim(db, SAME, "w1", 60)
    assert new.id == old.id == row_id and new.holder != old.holder
    with db.transaction() as s:
        assert claims.renew(s, SAME, row_id, old.holder, 60) is None
        assert claims.renew(s, SAME, row_id, new.holder, 60) is not None


def test_a_lost_claim_cannot_renew_or_finish(db: Database) -> None:
    [row_id] = _add(db, 1)
    [lost] = _claim(db, MOVED, "w1", -1)
    [taker] = _claim(db, MOVED, "w2", 60)
    with db.transaction() as s:
        assert claims.renew(s, MOVED, row_id, lost.holder, 60) is None
        assert claims.held(s, MOVED, row_id, lost.holder) is None
        assert not claims.finish(
            s, MOVED, row_id, lost.holder, {"result": "lost"}, keep_holder=False
        )
    row = _row(db, row_id)
    assert (row.status, row.claimed_by, row.result) == ("working", taker.holder, "")
    assert row.lease_until is not None and row.lease_until >= taker.lease_until

    with db.transaction() as s:
        until = claims.renew(s, MOVED, row_id, taker.holder, 120)
        assert until is not None and until > taker.lease_until
        done = {"status": "done", "result": "ok"}
        assert claims.finish(s, MOVED, row_id, taker.holder, done, keep_holder=True)
    row = _row(db, row_id)
    assert (row.status, row.claimed_by, row.result, row.lease_until) == (
        "done",
        taker.holder,
        "ok",
        None,
    )
    with db.transaction() as s:  # finished: the claim is over, even for its holder
        assert claims.renew(s, MOVED, row_id, taker.holder, 60) is None
        assert claims.held(s, MOVED, row_id, taker.holder) is None
    assert _claim(db, MOVED, "w3", 60) == []


def test_an_outcome_is_written_behind_the_fence_of_the_locked_row(db: Database) -> None:
    [row_id] = _add(db, 1)
    [claim] = _claim(db, SAME, "w1", 60)
    with db.transaction() as s:
        assert claims.held(s, SAME, row_id, "") is None  # no token holds nothing
        row = claims.held(s, SAME, row_id, claim.holder)
        assert row is not None
        row.result = "ok"
        row.due_at = db_now(s) + timedelta(hours=1)
        claims.let_go(SAME, row)
    row = _row(db, row_id)
    assert (row.status, row.claimed_by, row.lease_until, row.result) == ("waiting", "", None, "ok")
    assert _claim(db, SAME, "w2", 60) == []  # waits for its next turn


def test_a_period_is_claimed_once_and_never_moved_back(db_url: str, db: Database) -> None:
    [row_id] = _add(db, 1)
    claimers = [Database(db_url) for _ in range(3)]
    start = threading.Barrier(len(claimers))
    won: list[bool] = []

    def claimer(i: int) -> None:
        start.wait(timeout=30)
        while True:
            try:
                with claimers[i].transaction() as s:
                    got = claims.claim_once(s, Job, row_id, "last_period", "2026-W48")
            except Exception as exc:  # SQLite's one writer, or a lost race: again
                if is_lost_race(exc) or is_outage(exc):
                    continue
                raise
            won.append(got)
            return

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(len(claimers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for each in claimers:
        each.dispose()
    assert sorted(won) == [False, False, True]
    with db.transaction() as s:
        assert not claims.claim_once(s, Job, row_id, "last_period", "2026-W47")
        assert claims.claim_once(s, Job, row_id, "last_period", "2026-W49")
    assert _row(db, row_id).last_period == "2026-W49"


def test_a_row_the_caller_picked_is_claimed_only_while_nobody_holds_it(db: Database) -> None:
    [row_id] = _add(db, 1)
    with db.transaction() as s:
        first = claims.claim_row(s, MOVED, row_id, "w1", 60, db_now(s))
    assert first is not None and first.holder.startswith("w1~")
    with db.transaction() as s:  # held under a live lease: not takeable
        assert claims.claim_row(s, MOVED, row_id, "w2", 60, db_now(s)) is None
    assert _row(db, row_id).claimed_by == first.holder
    with db.transaction() as s:  # not due yet: not takeable either
        later = Job(due_at=db_now(s) + timedelta(hours=1))
        s.add(later)
        s.flush()
        assert claims.claim_row(s, MOVED, later.id, "w2", 60, db_now(s)) is None


def test_an_ended_lease_lets_the_next_claim_take_over_and_fences_the_late_holder(
    db: Database,
) -> None:
    [row_id] = _add(db, 1)
    [late] = _claim(db, MOVED, "w1", 3600)
    assert _claim(db, MOVED, "w2", 60) == []
    with db.transaction() as s:  # whoever judges the deadline ends the lease
        assert claims.expire(s, MOVED, row_id)
    row = _row(db, row_id)
    assert (row.status, row.claimed_by) == ("working", late.holder)  # still held, by nobody new
    [taker] = _claim(db, MOVED, "w2", 60)
    assert taker.id == row_id and taker.holder != late.holder
    with db.transaction() as s:
        assert claims.renew(s, MOVED, row_id, late.holder, 60) is None
        assert not claims.finish(
            s, MOVED, row_id, late.holder, {"result": "late"}, keep_holder=True
        )
        assert claims.finish(s, MOVED, row_id, taker.holder, {"status": "done"}, keep_holder=True)
    with db.transaction() as s:  # a row nobody holds has no lease to end
        assert not claims.expire(s, MOVED, row_id)
    row = _row(db, row_id)
    assert (row.status, row.claimed_by, row.result) == ("done", taker.holder, "")
