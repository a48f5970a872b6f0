"""Session 12 review of "one row-lock order: a project, then its tickets" (f4b9547): a project
deleted while requests that write rows of it are in flight, on PostgreSQL and MariaDB.

The commit makes every ticket move that *locks* its ticket lock the project's row first, so a
move that waited for a deletion sees the project gone. Requests that insert a ticket or a
deploy without locking anything first read the project unlocked, and the database only makes
their insert wait for the deletion (the foreign key) — then lets it through, because a deleted
project's row is still there (deletion is soft). Each test holds the request just before its
insert until the deletion has answered, the interleaving a busy server meets by chance, and
then looks at the rows: nothing open, approved or queued may be left for a project that is
gone."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from ferryman.app import create_app
from ferryman.db.models import Deploy, Project, Ticket
from ferryman.domain.statuses import DEPLOY_ACTIVE, TICKET_OPEN
from tests.api.world import SPACE, World, build_world

P = "/api/v1"
HOLD = 5.0  # at most this long is the request held (the deletion never waits for it)
INSERT = re.compile(r"^\s*INSERT INTO (tickets|deploys)\b", re.I)


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[tuple[World, TestClient]]:
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite takes one write lock: a request that read runs alone to its end")
    w = build_world(tmp_path, db_url)
    with TestClient(create_app(w.settings, w.db, embedded_worker=False)) as client:
        yield w, client
    w.db.dispose()


class BeforeInsert:
    """Holds the first statement that inserts a ticket or a deploy until ``go`` is set."""

    def __init__(self) -> None:
        self.held = threading.Event()
        self.go = threading.Event()

    def __call__(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if INSERT.match(statement) and not self.held.is_set():
            self.held.set()
            self.go.wait(timeout=HOLD)


def _call(client: TestClient, w: World, method: str, url: str, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {w.tokens['master']}"}
    return client.request(method, P + url, json=body, headers=headers)


def _deleted_during(
    w: World, client: TestClient, project_id: int, request: Callable[[], Any]
) -> tuple[Any, Any]:
    """``request`` run in a thread and held before its first insert of a ticket or a deploy
    while the project is deleted; both answers."""
    with w.db.read() as s:
        name = s.scalar(select(Project.name).where(Project.id == project_id))
    gate = BeforeInsert()
    event.listen(w.db.engine, "before_cursor_execute", gate)
    out: list[Any] = [None]

    def run() -> None:
        out[0] = request()

    thread = threading.Thread(target=run)
    try:
        thread.start()
        assert gate.held.wait(timeout=30), "the request never reached its insert"
        gone = _call(client, w, "DELETE", f"/projects/{SPACE}:{name}")
        gate.go.set()
        thread.join(timeout=60)
        assert not thread.is_alive(), "the request never answered"
    finally:
        gate.go.set()
        event.remove(w.db.engine, "before_cursor_execute", gate)
    return out[0], gone


def _left_for(w: World, project_id: int) -> tuple[bool, int, int]:
    """(the project is deleted, its open tickets, its queued/running/paused deploys)."""
    with w.db.read() as s:
        project = s.get(Project, project_id)
        assert project is not None
        tickets = s.scalar(
            select(func.count())
            .select_from(Ticket)
            .where(Ticket.project_id == project_id, Ticket.status.in_(TICKET_OPEN))
        )
        deploys = s.scalar(
            select(func.count())
            .select_from(Deploy)
            .where(Deploy.project_id == project_id, Deploy.status.in_(DEPLOY_ACTIVE))
        )
        return project.deleted_at is not None, int(tickets or 0), int(deploys or 0)


def _project_of(w: World, ticket_id: int) -> int:
    with w.db.read() as s:
        project_id = s.scalar(select(Ticket.project_id).where(Ticket.id == ticket_id))
        assert project_id is not None
        return int(project_id)


def _one_of_them_won(answer: Any, gone: Any, w: World, project_id: int) -> None:
    assert answer.status_code < 500 and gone.status_code < 500, (answer.text, gone.text)
    deleted, tickets, deploys = _left_for(w, project_id)
    if deleted:  # the deletion won: the request must have found the project gone
        assert (tickets, deploys) == (0, 0), (answer.status_code, answer.text)
        assert answer.status_code in (404, 409), answer.text
    else:  # the request won: the deletion was refused
        assert gone.status_code == 409, gone.text


def test_a_rollback_asked_while_its_project_is_deleted_queues_nothing_for_it(world):
    w, client = world
    ticket_id = w.deployed_ticket()
    project_id = _project_of(w, ticket_id)
    answer, gone = _deleted_during(
        w,
        client,
        project_id,
        lambda: _call(client, w, "POST", f"/tickets/{ticket_id}/rollback", {"title": "back"}),
    )
    _one_of_them_won(answer, gone, w, project_id)


def test_a_ticket_created_while_its_project_is_deleted_is_not_left_open(world):
    w, client = world
    project_id = int(w.new_project())
    body = {"project": str(project_id), "env": "staging", "ref": "v1", "title": "late"}
    answer, gone = _deleted_during(
        w, client, project_id, lambda: _call(client, w, "POST", "/tickets", body)
    )
    _one_of_them_won(answer, gone, w, project_id)


def test_a_deploy_requested_while_its_project_is_deleted_is_not_queued(world):
    w, client = world
    project_id = int(w.new_project())
    answer, gone = _deleted_during(
        w,
        client,
        project_id,
        lambda: _call(
            client, w, "POST", f"/projects/{project_id}/deploys", {"env": "staging", "ref": "v1"}
        ),
    )
    _one_of_them_won(answer, gone, w, project_id)


def test_an_approved_ticket_deployed_while_its_project_is_deleted_queues_nothing(world):
    w, client = world
    ticket_id = w.new_ticket(env="staging")
    project_id = _project_of(w, ticket_id)
    answer, gone = _deleted_during(
        w, client, project_id, lambda: _call(client, w, "POST", f"/tickets/{ticket_id}/deploy")
    )
    _one_of_them_won(answer, gone, w, project_id)
