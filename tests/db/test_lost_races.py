"""A transaction that loses a race (a real deadlock on PostgreSQL and MariaDB) is told apart
from a mistake and run again as a whole — also on MariaDB, where the deadlock rolls the whole
transaction back and surfaces as "SAVEPOINT does not exist" when the savepoint is released."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from ferryman.db.outage import is_lost_race, is_outage, retries_lost_races
from ferryman.db.session import Database

meta = MetaData()
cells = Table("race_cells", meta, Column("id", Integer, primary_key=True), Column("n", Integer))


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite takes one write lock: its writers queue, they never deadlock")
    database = Database(db_url)
    meta.create_all(database.engine)
    with database.transaction() as s:
        s.execute(cells.insert(), [{"id": 1, "n": 0}, {"id": 2, "n": 0}])
    yield database
    database.dispose()


def _bump(s: object, row: int) -> None:
    s.execute(update(cells).where(cells.c.id == row).values(n=cells.c.n + 1))  # type: ignore[attr-defined]


def _crossing_writers(db: Database, attempts: list[int]) -> list[BaseException | None]:
    """Two transactions that lock rows 1 and 2 in opposite orders, each inside a savepoint
    (the way ``services.deploys`` inserts): the database must kill one of them."""
    both_hold_one = threading.Barrier(2)
    results: list[BaseException | None] = [None, None]

    def writer(i: int, first: int, second: int) -> None:
        @retries_lost_races
        def unit() -> None:
            attempts[i] += 1
            with db.transaction() as s:
                _bump(s, first)
                if attempts[i] == 1:
                    both_hold_one.wait(timeout=20)
                with s.begin_nested():
                    _bump(s, second)

        try:
            unit()
        except BaseException as exc:  # reported by the test
            results[i] = exc

    threads = [
        threading.Thread(target=writer, args=(0, 1, 2)),
        threading.Thread(target=writer, args=(1, 2, 1)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_a_deadlocked_unit_of_work_runs_again_and_both_writers_land(db: Database) -> None:
    attempts = [0, 0]
    results = _crossing_writers(db, attempts)
    assert results == [None, None]
    assert sorted(attempts) == [1, 2], "exactly one writer lost the race and ran again"
    with db.read() as s:
        assert s.execute(select(cells.c.n).order_by(cells.c.id)).scalars().all() == [2, 2]


def test_the_deadlock_is_recognised_through_the_error_that_masks_it(db: Database) -> None:
    seen: list[BaseException] = []
    both_hold_one = threading.Barrier(2)

    def writer(first: int, second: int) -> None:
        try:
            with db.transaction() as s:
                _bump(s, first)
                both_hold_one.wait(timeout=20)
                with s.begin_nested():
                    _bump(s, second)
        except BaseException as exc:
            seen.append(exc)

    threads = [threading.Thread(target=writer, args=a) for a in ((1, 2), (2, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(seen) == 1
    assert isinstance(seen[0], DBAPIError)
    assert is_lost_race(seen[0]) and is_outage(seen[0])


def test_a_mistake_is_raised_at_once_and_not_run_again(db: Database) -> None:
    calls = 0

    @retries_lost_races
    def duplicate() -> None:
        nonlocal calls
        calls += 1
        with db.transaction() as s:
            s.execute(cells.insert().values(id=1, n=0))

    with pytest.raises(IntegrityError) as caught:
        duplicate()
    assert calls == 1
    assert not is_lost_race(caught.value)
