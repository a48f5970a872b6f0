"""``--wait`` learns the end of a deploy as it happens, not at the server's next poll.

A real server (uvicorn, in a thread of the test so that its poll can be made an hour long)
streams a deploy to the CLI's own follower (``cli/follow.py``); the deploy's lines and end are
written by someone else: another process on PostgreSQL (only ``NOTIFY`` can tell the server),
this process on SQLite (a worker embedded in the server). With every poll an hour long, only
the wake-up explains a follower that ends — the test asserts on what it received and in which
order, never on how long it took."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from ferryman.api.routes import console
from ferryman.app import create_app
from ferryman.cli.client import Client
from ferryman.cli.follow import stream_lines
from ferryman.clock import utcnow
from ferryman.domain.records import LogRecord
from ferryman.services import deploy_records, deploy_views, deploys
from ferryman.testing import databases
from tests.api.world import World, build_world

HOUR = 3600.0  # every poll of the console: far longer than the test is allowed to run
BOUND = 60.0  # how long a follower may take before the test fails (a hang, not a timing)

# the other process: a batch of lines, then the deploy's end, as a worker elsewhere writes them
WRITER = """
import json, sys
from ferryman.clock import utcnow
from ferryman.db.session import Database
from ferryman.domain.records import LogRecord
from ferryman.services import deploy_records, deploys
url, deploy_id = sys.argv[1], int(sys.argv[2])
db = Database(url)
lines = [LogRecord(host="", stage="switch", text=f"elsewhere {i}", ts=utcnow()) for i in (1, 2)]
deploy_records.write_batch(db, deploy_id, lines, [], {}, None)
deploys.finish(db, deploy_id, "failed", {"message": "ended by another process"})
db.dispose()
"""


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    reason = databases.unavailable("postgresql")
    if reason:
        if os.environ.get("FERRYMAN_REQUIRE_DATABASES", "") not in ("", "0", "no"):
            pytest.fail(reason)
        pytest.skip(reason)
    url = databases.create("postgresql", tmp_path)
    yield url
    databases.drop(url)


@pytest.fixture
def no_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "POLL_SECONDS", HOUR)
    monkeypatch.setattr(console, "FALLBACK_SECONDS", HOUR)


def _address() -> str:
    net = os.environ.get("FERRYMAN_TEST_NET", "127.0.100")
    return f"{net}.250"


@contextlib.contextmanager
def serving(world: World) -> Iterator[str]:
    """The world's API (no embedded worker) on a loopback port, in a thread; its URL."""
    host = _address()
    with socket.socket() as s:
        s.bind((host, 0))
        port = int(s.getsockname()[1])
    app = create_app(world.settings, world.db, embedded_worker=False)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive(), "the server did not start"
            threading.Event().wait(0.05)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


class Following:
    """The CLI's follower of one deploy, in a thread: what it was told, in order."""

    def __init__(self, url: str, token: str, deploy_id: int) -> None:
        self.seen: list[tuple[str, Any]] = []
        self.streaming = threading.Event()  # the server has read the deploy once
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.client = Client(url=url, token=token)
        self.thread = threading.Thread(target=self._run, args=(deploy_id,), daemon=True)
        self.thread.start()

    def _run(self, deploy_id: int) -> None:
        def on_deploy(deploy: dict[str, Any]) -> None:
            self.seen.append(("deploy", deploy["status"]))
            if len(self.seen) >= 2:  # the REST read, then the stream's first message
                self.streaming.set()

        def on_line(line: dict[str, Any]) -> None:
            self.seen.append(("line", line["text"]))

        try:
            self.result = stream_lines(self.client, deploy_id, on_line, on_deploy)
        except BaseException as exc:
            self.error = exc
        finally:
            self.client.close()
            self.streaming.set()

    def ended(self) -> dict[str, Any]:
        self.thread.join(BOUND)
        assert not self.thread.is_alive(), f"the follower never learned the end: {self.seen}"
        assert self.error is None, self.error
        assert self.result is not None
        return self.result


def test_a_follower_learns_the_end_written_by_another_process_on_postgresql(
    pg_url, tmp_path, no_poll
):
    world = build_world(tmp_path, database_url=pg_url)
    deploy_id = world.queued_deploy()
    with serving(world) as url:
        following = Following(url, world.tokens["super"], deploy_id)
        assert following.streaming.wait(BOUND)
        subprocess.run(
            [sys.executable, "-c", WRITER, pg_url, str(deploy_id)],
            check=True,
            timeout=120,
            env={**os.environ, "FERRYMAN_HOME": str(world.settings.home)},
        )
        ended = following.ended()
    assert ended["status"] == "failed"
    assert following.seen[:2] == [("deploy", "queued"), ("deploy", "queued")]
    assert following.seen[2:] == [
        ("line", "elsewhere 1"),
        ("line", "elsewhere 2"),
        ("deploy", "failed"),
    ]
    stored = deploy_views.logs_after(world.db, deploy_id, 0, 100)
    assert [line["text"] for line in stored] == ["elsewhere 1", "elsewhere 2"]


def _listening(world: World) -> list[int]:
    """The backends of the world's database listening for deploy changes."""
    with world.db.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE 'LISTEN ferryman_deploy%%'"
        ).all()
    return [int(row[0]) for row in rows]


def test_a_follower_learns_the_end_after_the_servers_listening_connection_was_cut(
    pg_url, tmp_path, no_poll
):
    """The end written while nobody listened is not lost: the server listens again and
    reads once more (every poll is still an hour long)."""
    world = build_world(tmp_path, database_url=pg_url)
    deploy_id = world.queued_deploy()
    with serving(world) as url:
        following = Following(url, world.tokens["super"], deploy_id)
        assert following.streaming.wait(BOUND)
        for _ in range(int(BOUND / 0.05)):  # the server listens once someone follows
            if _listening(world):
                break
            threading.Event().wait(0.05)
        [listener] = _listening(world)
        with world.db.engine.connect() as conn:
            conn.exec_driver_sql("SELECT pg_terminate_backend(%s)", (listener,))
        subprocess.run(
            [sys.executable, "-c", WRITER, pg_url, str(deploy_id)],
            check=True,
            timeout=120,
            env={**os.environ, "FERRYMAN_HOME": str(world.settings.home)},
        )
        ended = following.ended()
    assert ended["status"] == "failed"
    assert following.seen[2:] == [
        ("line", "elsewhere 1"),
        ("line", "elsewhere 2"),
        ("deploy", "failed"),
    ]


def test_a_follower_learns_the_end_written_in_the_servers_own_process(tmp_path, no_poll):
    world = build_world(tmp_path)  # SQLite: no notifications, only the in-process wake-up
    deploy_id = world.queued_deploy()
    with serving(world) as url:
        following = Following(url, world.tokens["super"], deploy_id)
        assert following.streaming.wait(BOUND)
        lines = [LogRecord(host="", stage="switch", text="here", ts=utcnow())]
        deploy_records.write_batch(world.db, deploy_id, lines, [], {}, None)
        deploys.finish(world.db, deploy_id, "failed", {"message": "ended beside the server"})
        ended = following.ended()
    assert ended["status"] == "failed"
    assert following.seen[2:] == [("line", "here"), ("deploy", "failed")]


def test_a_notification_for_a_deploy_that_does_not_exist_is_ignored(pg_url, tmp_path, no_poll):
    """A NOTIFY anyone can send (``pg_notify('ferryman_deploy', …)``) only makes a follower
    read again: garbage or another deploy's id changes nothing it shows."""
    world = build_world(tmp_path, database_url=pg_url)
    deploy_id = world.queued_deploy()
    with serving(world) as url:
        following = Following(url, world.tokens["super"], deploy_id)
        assert following.streaming.wait(BOUND)
        with world.db.engine.connect() as conn:
            for payload in ("not a number", "-1", str(deploy_id + 1000), json.dumps([1])):
                conn.exec_driver_sql("SELECT pg_notify('ferryman_deploy', %s)", (payload,))
            conn.commit()
        deploys.finish(world.db, deploy_id, "failed", {"message": "the end"})
        ended = following.ended()
    assert ended["status"] == "failed"
    assert following.seen[2:] == [("deploy", "failed")]
