"""Deliveries are claimed through ``db/claims.py``, on SQLite, PostgreSQL and MariaDB, and
attacked the ways a fleet of workers fails: two dispatchers racing the same rows, a
dispatcher frozen past its lease coming back to record what it sent, and one SIGKILLed in
the middle of a send. Every test asserts on the delivery rows and on what a real HTTP
receiver on loopback was actually sent."""

from __future__ import annotations

import asyncio
import http.server
import ipaddress
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from sqlalchemy import select

from ferryman.bootstrap import attach_key
from ferryman.config.settings import Settings
from ferryman.db.models import NotifyDelivery
from ferryman.db.outage import is_lost_race, is_outage
from ferryman.db.session import Database
from ferryman.notify import dispatcher
from ferryman.notify.message import Message
from ferryman.outbound import Outbound
from ferryman.secretbox import SecretBox, new_key
from ferryman.services import notifications
from ferryman.services.audit import SYSTEM
from tests.helpers import unique

NET = os.environ.get("FERRYMAN_TEST_NET", "127.0.100")
LOOPBACK = Outbound(allow=(ipaddress.ip_network("127.0.0.0/8"),))
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Receiver:
    """A webhook receiver: every body it was sent, by title; ``hold`` keeps each request
    waiting (a receiver that stalls) until ``release`` is set."""

    url: str = ""
    got: list[str] = field(default_factory=list)
    hold: bool = False
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def titles(self) -> dict[str, int]:
        return {t: self.got.count(t) for t in set(self.got)}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.got.append(body["title"])
            state.arrived.set()
            if state.hold:
                state.release.wait(30)
            try:
                self.send_response(200)
                self.end_headers()
            except OSError:  # the sender was killed meanwhile
                pass

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer((f"{NET}.211", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://{NET}.211:{server.server_address[1]}/hook"
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def key() -> bytes:
    return new_key()


@pytest.fixture
def ndb(db_url: str, key: bytes) -> Iterator[Database]:
    db = Database(db_url)
    db.upgrade()
    attach_key(db, SecretBox(key))
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture
def quick(settings: Settings) -> Settings:
    return replace(settings, public_url="https://deploy.example.com", notify_backoff_seconds=0.01)


def _queue(db: Database, url: str, count: int) -> list[int]:
    """``count`` deliveries to a new webhook channel, titled ``m0``, ``m1``, …"""
    name = unique("hook")
    made = notifications.save_channel(
        db, SYSTEM, "default", name, "webhook", {"url": url}, outbound=LOOPBACK
    )
    with db.transaction() as s:
        rows = [
            NotifyDelivery(
                channel_id=made["id"],
                event="test",
                message=Message(event="test", title=f"m{i}", text="t", link="/").to_dict(),
            )
            for i in range(count)
        ]
        s.add_all(rows)
        s.flush()
        return [row.id for row in rows]


def _rows(db: Database, ids: list[int]) -> list[NotifyDelivery]:
    with db.read() as s:
        found = s.scalars(
            select(NotifyDelivery).where(NotifyDelivery.id.in_(ids)).order_by(NotifyDelivery.id)
        ).all()
        s.expunge_all()
        return list(found)


def test_two_dispatchers_racing_the_same_rows_send_each_delivery_once(
    db_url: str, key: bytes, ndb: Database, quick: Settings, receiver: Receiver
) -> None:
    ids = _queue(ndb, receiver.url, 30)
    start = threading.Barrier(2)
    attempted: list[int] = []
    errors: list[BaseException] = []

    def dispatcher_process(name: str) -> None:
        db = Database(db_url)  # a worker of its own: its own engine and connections
        db.box = SecretBox(key)
        start.wait(timeout=30)
        try:
            for _ in range(40):
                try:
                    done = asyncio.run(dispatcher.deliver_due(db, quick, LOOPBACK, 5, worker=name))
                except Exception as exc:  # SQLite's one writer, a lost race: next round
                    if not (is_lost_race(exc) or is_outage(exc)):
                        raise
                    continue
                attempted.append(done)
                if not done and len(receiver.got) >= len(ids):
                    return
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=dispatcher_process, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert receiver.titles() == {f"m{i}": 1 for i in range(30)}  # each sent, none twice
    rows = _rows(ndb, ids)
    assert [(r.status, r.attempts, len(r.history)) for r in rows] == [("sent", 1, 1)] * 30
    assert {r.claimed_by.split("~")[0] for r in rows} <= {"a", "b"}
    assert all(r.lease_until is None for r in rows)
    assert sum(attempted) == 30


def test_a_dispatcher_frozen_past_its_lease_records_nothing_over_the_one_that_took_over(
    ndb: Database, quick: Settings, receiver: Receiver
) -> None:
    [delivery] = _queue(ndb, receiver.url, 1)
    frozen = notifications.claim_delivery(ndb, "frozen", 0.5)
    assert frozen is not None and frozen.delivery_id == delivery
    # its worker froze (a GC pause, a stopped VM) past its lease; another takes over and sends
    time.sleep(1.0)
    assert asyncio.run(dispatcher.deliver_due(ndb, quick, LOOPBACK, worker="taker")) == 1
    [row] = _rows(ndb, [delivery])
    assert (row.status, row.attempts) == ("sent", 1) and row.claimed_by.startswith("taker~")
    # the frozen worker wakes up: neither its success nor its failure is recorded
    for error in ("", "HTTP 500"):
        assert notifications.record_attempt(ndb, delivery, frozen.holder, error, 0.01) == ""
        assert not notifications.renew_delivery(ndb, delivery, frozen.holder, 60)
    [after] = _rows(ndb, [delivery])
    assert (after.status, after.attempts, after.history) == ("sent", 1, row.history)
    assert after.sent_at == row.sent_at and after.claimed_by == row.claimed_by
    assert receiver.got == ["m0"]  # the frozen worker never sent; the taker sent it once


def test_a_lost_claim_writes_nothing_even_while_the_delivery_is_being_retried(
    ndb: Database, receiver: Receiver
) -> None:
    [delivery] = _queue(ndb, receiver.url, 1)
    lost = notifications.claim_delivery(ndb, "w1", -1)  # a lease already over
    taker = notifications.claim_delivery(ndb, "w2", 60)
    assert lost is not None and taker is not None and taker.delivery_id == delivery
    assert notifications.claim_delivery(ndb, "w3", 60) is None  # the taker's lease holds
    assert notifications.record_attempt(ndb, delivery, lost.holder, "", 0.01) == ""
    [row] = _rows(ndb, [delivery])
    assert (row.status, row.attempts, row.history, row.claimed_by) == (
        "sending",
        0,
        [],
        taker.holder,
    )
    assert notifications.record_attempt(ndb, delivery, taker.holder, "HTTP 500", 0.01) == (
        "pending"
    )
    [row] = _rows(ndb, [delivery])
    assert (row.status, row.attempts, row.claimed_by, row.lease_until) == ("pending", 1, "", None)
    assert notifications.record_attempt(ndb, delivery, taker.holder, "", 0.01) == ""  # done
    assert _rows(ndb, [delivery])[0].attempts == 1
    assert receiver.got == []


CHILD = """
import asyncio, ipaddress, sys
from dataclasses import replace
from ferryman.config.settings import load_settings
from ferryman.db.session import Database
from ferryman.notify import dispatcher
from ferryman.outbound import Outbound
from ferryman.secretbox import SecretBox

url, key, home, LEASE = sys.argv[1], sys.argv[2].encode(), sys.argv[3], float(sys.argv[4])
db = Database(url)
db.box = SecretBox(key)
settings = load_settings({"FERRYMAN_HOME": home})
out = Outbound(allow=(ipaddress.ip_network("127.0.0.0/8"),))
print("ready", flush=True)
asyncio.run(dispatcher.deliver_due(db, settings, out, worker="doomed", lease=LEASE))
"""


def test_a_dispatcher_killed_mid_send_is_taken_over_once_its_lease_ends(
    db_url: str,
    key: bytes,
    ndb: Database,
    quick: Settings,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    [delivery] = _queue(ndb, receiver.url, 1)
    receiver.hold = True  # the receiver stalls: the child is killed in the middle of its send
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, db_url, key.decode(), str(tmp_path / "child"), "10"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.arrived.wait(60), "the child never sent"
        [row] = _rows(ndb, [delivery])
        assert row.status == "sending" and row.claimed_by.startswith("doomed~")
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()
    receiver.hold = False
    receiver.release.set()
    [row] = _rows(ndb, [delivery])
    assert (row.status, row.attempts, row.history) == ("sending", 0, [])  # it recorded nothing
    # its lease still runs: nobody else sends it yet
    assert asyncio.run(dispatcher.deliver_due(ndb, quick, LOOPBACK, worker="rescuer")) == 0
    assert receiver.got == ["m0"]
    assert row.lease_until is not None
    deadline = time.monotonic() + 60
    sent = 0
    while not sent and time.monotonic() < deadline:
        time.sleep(0.5)
        sent = asyncio.run(dispatcher.deliver_due(ndb, quick, LOOPBACK, worker="rescuer"))
    assert sent == 1
    [row] = _rows(ndb, [delivery])
    assert (row.status, row.attempts, [h["ok"] for h in row.history]) == ("sent", 1, [True])
    assert row.claimed_by.startswith("rescuer~") and row.lease_until is None
    # at least once: the receiver saw the killed child's request and the rescuer's
    assert receiver.got == ["m0", "m0"]
