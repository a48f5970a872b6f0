"""Leases under clock skew: workers on machines whose clocks differ judge one another's
leases by the database's clock, never their own. Each worker here is a real process whose
clock is moved by libfaketime; the database (PostgreSQL, MariaDB) keeps the true time."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from ferryman.db.models import Deploy, Lock
from ferryman.db.session import Database
from ferryman.services import locks, queue
from ferryman.testing import databases
from tests.conftest import _require_databases
from tests.jobs.test_queue import _queue_jobs

ROOT = Path(__file__).resolve().parents[2]
LEASE = 60.0
# One lease call in a process whose clock is off by the given offset (faketime's syntax)
CALL = """
import json, sys
from ferryman.db.session import Database
from ferryman.services import locks, queue
db = Database(sys.argv[1])
what, arg = sys.argv[2], sys.argv[3]
if what == "take_over":
    print(json.dumps([c.id for c in queue.take_over_lost(db, "skewed-worker", 60.0)]))
elif what == "extend":
    deploy_id, holder = arg.split(" ", 1)
    print(json.dumps(queue.renew_lease(db, int(deploy_id), holder, 60.0)))
elif what == "acquire":
    try:
        locks.acquire(db, arg, owner="skewed", deploy_id=None, holder="skewed", lease=60.0)
        print(json.dumps("acquired"))
    except Exception as exc:
        print(json.dumps(type(exc).__name__))
elif what == "heartbeat":
    print(json.dumps(locks.heartbeat(db, arg, owner="slow-clock", lease=60.0)))
"""


@pytest.fixture(params=("postgresql", "mariadb"))
def network_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database on its own server: the one clock the workers share."""
    reason = databases.unavailable(request.param)
    if reason:
        if _require_databases():
            pytest.fail(reason)
        pytest.skip(reason)
    url = databases.create(request.param, tmp_path)
    db = Database(url)
    db.upgrade()
    try:
        yield db
    finally:
        db.dispose()
        databases.drop(url)


def _skewed(db: Database, offset: str, what: str, arg: str = "") -> object:
    faketime = shutil.which("faketime")
    assert faketime, "faketime is installed by scripts/setup-system --test"
    done = subprocess.run(
        [faketime, "-f", offset, sys.executable, "-c", CALL, db.url, what, arg],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _claimed(db: Database) -> int:
    [deploy_id] = _queue_jobs(db, 1)
    claim = queue.claim_next(db, "live-worker", None, LEASE)
    assert claim == deploy_id
    return deploy_id


def test_a_worker_whose_clock_runs_ahead_never_takes_over_a_live_lease(network_db):
    deploy_id = _claimed(network_db)
    assert _skewed(network_db, "+10m", "take_over") == []
    with network_db.read() as s:
        assert s.scalar(select(Deploy.worker).where(Deploy.id == deploy_id)) == "live-worker"


def test_a_lease_extended_by_a_worker_whose_clock_runs_behind_is_still_a_lease(network_db):
    deploy_id = _claimed(network_db)
    with network_db.transaction() as s:
        row = s.get(Deploy, deploy_id)
        assert row is not None, f"no deploy #{deploy_id}"
        row.worker = "slow-clock-worker"
        row.claimed_by = holder = "slow-clock-worker~000000000000"  # its claim
    assert _skewed(network_db, "-10m", "extend", f"{deploy_id} {holder}") is True
    assert queue.take_over_lost(network_db, "true-clock-worker", LEASE) == []


def test_a_project_lock_is_judged_by_the_database_clock_whoever_holds_or_wants_it(network_db):
    locks.acquire(network_db, "deploy:p:e", owner="live", deploy_id=None, holder="a", lease=LEASE)
    assert _skewed(network_db, "+10m", "acquire", "deploy:p:e") == "LockHeld"
    with network_db.transaction() as s:
        lock = s.get(Lock, "deploy:p:e")
        assert lock is not None, "the lock just acquired is not there"
        lock.owner = "slow-clock"
    assert _skewed(network_db, "-10m", "heartbeat", "deploy:p:e") is True
    with pytest.raises(Exception, match="locked"):
        locks.acquire(network_db, "deploy:p:e", owner="b", deploy_id=None, holder="b", lease=LEASE)
