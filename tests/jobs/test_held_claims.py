"""Work done under a claim renews it while it runs (``jobs/held.py`` over ``db/claims.py``),
on SQLite, PostgreSQL and MariaDB: work longer than its lease keeps its row from every other
claimer; a claim that was taken over cancels its work, which writes nothing; a renewal the
database could not answer is tried again."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from ferryman.db import claims
from ferryman.db.session import Database
from ferryman.jobs import held
from tests.db.test_claims import SAME, Job, _add, _Base, _row

LEASE = 1.5
log = logging.getLogger(__name__)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    _Base.metadata.create_all(database.engine)
    yield database
    database.dispose()


def _claim_one(db: Database, worker: str) -> claims.Claim:
    with db.transaction() as s:
        [claim] = claims.claim_due(s, SAME, worker, LEASE)
    return claim


def _renew(db: Database, claim: claims.Claim) -> bool:
    with db.transaction() as s:
        return claims.renew(s, SAME, claim.id, claim.holder, LEASE) is not None


def _others_claim(db: Database) -> list[claims.Claim]:
    with db.transaction() as s:
        return claims.claim_due(s, SAME, "other", LEASE)


def test_work_longer_than_its_lease_keeps_the_row_and_returns_its_result(db: Database) -> None:
    _add(db, 1)
    claim = _claim_one(db, "w1")
    seen = [claim.lease_until]
    stolen: list[claims.Claim] = []

    async def work() -> str:
        while len(seen) < 4:  # three renewals: the work outlived its first lease twice over
            await asyncio.sleep(0.05)
            until = (await asyncio.to_thread(_row, db, claim.id)).lease_until
            assert until is not None
            if until > seen[-1]:
                seen.append(until)
                stolen.extend(await asyncio.to_thread(_others_claim, db))
        return "done"

    got = asyncio.run(held.run_held(work(), lambda: _renew(db, claim), LEASE, "job", log))
    assert got == "done"
    assert stolen == []
    assert _row(db, claim.id).claimed_by == claim.holder


def test_a_claim_taken_over_cancels_its_work_which_writes_nothing(db: Database) -> None:
    _add(db, 1)
    claim = _claim_one(db, "w1")
    cancelled: list[bool] = []

    async def work() -> str:
        with db.transaction() as s:  # another worker takes the row over
            s.execute(update(Job).where(Job.id == claim.id).values(claimed_by="w2~taken"))
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return "never"

    with pytest.raises(held.ClaimLost):
        asyncio.run(held.run_held(work(), lambda: _renew(db, claim), LEASE, "job", log))
    assert cancelled == [True]
    with db.transaction() as s:
        assert not claims.finish(
            s, SAME, claim.id, claim.holder, {"result": "x"}, keep_holder=False
        )
    row = _row(db, claim.id)
    assert (row.claimed_by, row.result) == ("w2~taken", "")


def test_a_renewal_the_database_could_not_answer_is_tried_again(db: Database) -> None:
    _add(db, 1)
    claim = _claim_one(db, "w1")
    calls: list[bool] = []
    renewed_after_the_outage = threading.Event()

    def renew() -> bool:
        calls.append(True)
        if len(calls) == 1:
            raise ConnectionError("the database is away")
        holds = _renew(db, claim)
        renewed_after_the_outage.set()
        return holds

    async def work() -> str:
        assert await asyncio.to_thread(renewed_after_the_outage.wait, 60)
        return "done"

    assert asyncio.run(held.run_held(work(), renew, LEASE, "job", log)) == "done"
    assert _row(db, claim.id).claimed_by == claim.holder
