"""Session 12 review of the one row-lock order (f4b9547, 495e155): an apply of a project's
configuration (``POST /api/v1/projects``, what ``ferryman apply`` sends) while the project is
being deleted, on PostgreSQL and MariaDB.

The apply finds the project by its name without a lock, then updates the row. A deletion that
commits between the two renames the row (``NAME~ID``) and marks it deleted; an UPDATE that
only waited for it would write the configuration into the deleted row. The test holds the
apply just before its UPDATE until the deletion has answered. Either outcome is fine — the
apply refused (today: 404), or the configuration live under its name afterwards — but never an
apply that answers success while no live project of that name exists."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from ferryman.app import create_app
from ferryman.db.models import Project, Space
from tests.api.world import SPACE, World, build_world, fresh

P = "/api/v1"
HOLD = 5.0
UPDATE = re.compile(r"^\s*UPDATE projects SET\b.*\bconfig\b", re.I | re.S)


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[tuple[World, TestClient]]:
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite takes one write lock: an apply and a deletion never interleave")
    w = build_world(tmp_path, db_url)
    with TestClient(create_app(w.settings, w.db, embedded_worker=False)) as client:
        yield w, client
    w.db.dispose()


class BeforeUpdate:
    def __init__(self) -> None:
        self.held = threading.Event()
        self.go = threading.Event()

    def __call__(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if UPDATE.match(statement) and not self.held.is_set():
            self.held.set()
            self.go.wait(timeout=HOLD)


def _call(client: TestClient, w: World, method: str, url: str, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {w.tokens['master']}"}
    return client.request(method, P + url, json=body, headers=headers)


def _live(w: World, name: str) -> list[Project]:
    with w.db.read() as s:
        found = list(
            s.scalars(
                select(Project)
                .join(Space, Space.id == Project.space_id)
                .where(Space.name == SPACE, Project.name == name, Project.deleted_at.is_(None))
            )
        )
        s.expunge_all()
        return found


def test_an_apply_while_its_project_is_deleted_never_answers_success_for_nothing(world):
    w, client = world
    name = fresh("applied")
    config = w.config(name)
    made = _call(client, w, "POST", "/projects", config)
    assert made.status_code in (200, 201), made.text
    changed = {**config, "environments": {**config["environments"]}}
    changed["environments"]["staging"] = {**config["environments"]["staging"], "user": "deploy"}
    gate = BeforeUpdate()
    event.listen(w.db.engine, "before_cursor_execute", gate)
    out: list[Any] = [None]

    def run() -> None:
        out[0] = _call(client, w, "POST", "/projects", changed)

    thread = threading.Thread(target=run)
    try:
        thread.start()
        assert gate.held.wait(timeout=30), "the apply never reached its update"
        gone = _call(client, w, "DELETE", f"/projects/{SPACE}:{name}")
        gate.go.set()
        thread.join(timeout=60)
        assert not thread.is_alive(), "the apply never answered"
    finally:
        gate.go.set()
        event.remove(w.db.engine, "before_cursor_execute", gate)
    applied = out[0]
    assert applied.status_code < 500 and gone.status_code < 500, (applied.text, gone.text)
    if 200 <= applied.status_code < 300:  # said it applied: the project is there to deploy
        live = _live(w, name)
        assert len(live) == 1, (gone.status_code, applied.text[:200])
        assert live[0].config["environments"]["staging"]["user"] == "deploy"
