"""What the lock-order tests share: a world on PostgreSQL or MariaDB (SQLite queues its
writers, they never deadlock) and ``Crossing``, which forces two requests' first row locks to
cross."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ferryman.app import create_app
from tests.api.world import World, build_world


def world_on_a_server_database(db_url: str, tmp_path: Path) -> Iterator[tuple[World, TestClient]]:
    """The body of a ``world`` fixture: skipped on SQLite."""
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite takes one write lock: its writers queue, they never deadlock")
    w = build_world(tmp_path, db_url)
    with TestClient(create_app(w.settings, w.db, embedded_worker=False)) as client:
        yield w, client
    w.db.dispose()


class Crossing:
    """Holds each thread after its first locking statement (``locking``: its first group names
    the table) until another thread has taken its first one too (a barrier of two that gives
    up after ``hold`` seconds)."""

    def __init__(self, locking: re.Pattern[str], hold: float) -> None:
        self.locking = locking
        self.barrier = threading.Barrier(2, timeout=hold)
        self.first: dict[int, str] = {}  # thread → the table it locked first
        self.lock = threading.Lock()

    def __call__(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        found = self.locking.match(statement)
        if found is None:
            return
        me = threading.get_ident()
        with self.lock:
            if me in self.first:
                return
            self.first[me] = found.group(1)
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:
            pass  # the other side waits for this one's row: go on
