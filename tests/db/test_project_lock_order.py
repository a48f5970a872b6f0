"""Deleting a project while a request changes one of its tickets, on PostgreSQL and MariaDB:
both take row locks on the project and on the ticket, and in one order only — the project's
row, then its tickets' (``docs/architecture.md``, "Concurrency"). Taken in opposite orders,
each request would hold one row and wait for the other's: the database kills one of them and
its client gets a 503 instead of an answer.

Every trial forces the dangerous interleaving: a statement hook holds each request just after
its first row lock until the other one has taken its own first lock (or a moment has passed,
when the other is already waiting for the same row). With one order, the second request waits
for the first and then sees what it did; with two, both hold one row and deadlock."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from ferryman.db.models import Deploy, Project, Ticket
from ferryman.domain.statuses import DeployStatus, TicketStatus
from tests.api.world import SPACE, World
from tests.db.lock_crossing import Crossing, world_on_a_server_database

P = "/api/v1"
TRIALS = 6  # each forces the crossing; bounded by DEADLINE too
DEADLINE = 60.0  # seconds for all trials of one test (a loaded machine still gets 2)
HOLD = 1.0  # how long a request that holds its first lock waits for the other's

# a SELECT that locks rows of projects or tickets (the dialects' spellings of it)
LOCKING = re.compile(
    r"^\s*SELECT\b.*\bFROM (projects|tickets)\b.*"
    r"\b(FOR (NO KEY )?UPDATE|FOR (KEY )?SHARE|LOCK IN SHARE MODE)\b",
    re.S | re.I,
)


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[tuple[World, TestClient]]:
    yield from world_on_a_server_database(db_url, tmp_path)


def _race(w: World, *requests: Callable[[], Any]) -> list[Any]:
    """Run the requests at once, the crossing forced; their responses."""
    crossing = Crossing(LOCKING, HOLD)
    event.listen(w.db.engine, "after_cursor_execute", crossing)
    start = threading.Barrier(len(requests))
    out: list[Any] = [None] * len(requests)

    def run(i: int) -> None:
        start.wait(timeout=30)
        out[i] = requests[i]()

    try:
        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads), "a request never answered"
    finally:
        event.remove(w.db.engine, "after_cursor_execute", crossing)
    return out


def _call(client: TestClient, w: World, method: str, url: str, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {w.tokens['master']}"}
    return client.request(method, P + url, json=body, headers=headers)


def _rows(w: World, ticket_id: int) -> tuple[Ticket, Project]:
    with w.db.read() as s:
        ticket = s.get(Ticket, ticket_id)
        assert ticket is not None
        project = s.get(Project, ticket.project_id)
        assert project is not None
        s.expunge_all()
        return ticket, project


def _trials(body: Callable[[int], None]) -> int:
    began = time.monotonic()
    done = 0
    while done < TRIALS and (done < 2 or time.monotonic() - began < DEADLINE):
        body(done)
        done += 1
    return done


def test_deleting_a_project_while_its_release_request_changes_never_deadlocks(world):
    w, client = world
    outcomes: set[tuple[int, int]] = set()

    def trial(n: int) -> None:
        project_id = int(w.new_project())
        made = _call(
            client,
            w,
            "POST",
            "/project",
            {"project": str(project_id), "env": "production", "version": "v1", "title": "first"},
        )
        assert made.status_code == 201, made.text
        ticket_id = int(made.json()["id"])
        name = _rows(w, ticket_id)[1].name
        put, gone = _race(
            w,
            lambda: _call(client, w, "PUT", f"/project/{ticket_id}", {"title": f"second {n}"}),
            lambda: _call(client, w, "DELETE", f"/projects/{SPACE}:{name}"),
        )
        outcomes.add((put.status_code, gone.status_code))
        assert gone.status_code == 204, gone.text  # nothing runs: the deletion always lands
        ticket, project = _rows(w, ticket_id)
        assert project.deleted_at is not None
        assert ticket.status == TicketStatus.CANCELLED  # open when the deletion came
        if put.status_code == 200:  # the PUT first, then the deletion
            assert put.json()["title"] == f"second {n}"
            assert ticket.title == f"second {n}"
        else:  # the deletion first: the PUT finds no request to change
            assert put.status_code in (404, 409), put.text
            assert ticket.title == "first"

    assert _trials(trial) >= 2
    assert all(code < 500 for pair in outcomes for code in pair), outcomes


def test_deleting_a_project_while_its_ticket_is_deployed_never_deadlocks(world):
    w, client = world
    outcomes: set[tuple[int, int]] = set()

    def trial(n: int) -> None:
        ticket_id = w.new_ticket(env="staging")  # approved: staging needs no approval
        name = _rows(w, ticket_id)[1].name
        deploy, gone = _race(
            w,
            lambda: _call(client, w, "POST", f"/tickets/{ticket_id}/deploy"),
            lambda: _call(client, w, "DELETE", f"/projects/{SPACE}:{name}"),
        )
        outcomes.add((deploy.status_code, gone.status_code))
        ticket, project = _rows(w, ticket_id)
        if deploy.status_code == 200:  # queued first: the deletion is refused while it is
            assert gone.status_code == 409, gone.text
            assert project.deleted_at is None
            assert ticket.status == TicketStatus.QUEUED
            with w.db.read() as s:
                queued = s.get(Deploy, deploy.json()["deploy_id"])
                assert queued is not None and queued.status == DeployStatus.QUEUED
        else:  # deleted first: its open ticket was cancelled, nothing was queued
            assert gone.status_code == 204, gone.text
            assert deploy.status_code in (404, 409), deploy.text
            assert project.deleted_at is not None
            assert ticket.status == TicketStatus.CANCELLED
            assert ticket.deploy_id is None

    assert _trials(trial) >= 2
    assert all(code < 500 for pair in outcomes for code in pair), outcomes
