"""Session 12 review beside ``tests/api/test_hidden_ids.py`` (another space's ids answer as
missing ones): that test walks the API's deploy, server, environment and channel ids. Here a
member of space ``acme`` tries ids of space ``other`` on the kinds it leaves out — tickets,
release requests and numeric project ids on every API route that takes one — and on the web
pages that take an id (``/s/acme/tickets/<id>``, ``/deploys/<id>``, ``/servers/<id>`` and their
forms' actions). Each answer must equal the one for an id nobody has, status, location and body,
apart from the id itself; and nothing of space ``other`` changes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ferryman.app import create_app
from ferryman.config.project import parse_project
from ferryman.db.models import Deploy, Server, Space, Ticket
from ferryman.domain.statuses import DeployStatus
from ferryman.services import deploys, projects, tickets
from ferryman.services.audit import SYSTEM
from tests.api.test_authorization import ROUTES
from tests.api.world import RECIPES, World, build_world, fresh
from tests.web.test_pages import browser, csrf_of

MISSING = 987_654
ID_KINDS = ("{ticket_id}", "{request_id}", "{project}")
FILLERS = {
    "{env}": "production",
    "{name}": "KEY",
    "{path}": "a.conf",
    "{scope}": "host",
    "{user}": "nobody",
}


class Elsewhere:
    """Rows of space ``other``, which the attackers are no members of."""

    def __init__(self, w: World) -> None:
        for _ in range(3):  # ids of acme's own first, so other's are not all 1
            w.new_project()
        project, _ = projects.apply_project(
            w.db, SYSTEM, parse_project(w.config(fresh("elsewhere"), "other"))
        )
        self.project = project.id
        self.pending = self._ticket(w, "production")
        self.approved = self._ticket(w, "staging")
        self.deploy = deploys.request_deploy(w.db, SYSTEM, project.id, "staging", "v1").id
        with w.db.transaction() as s:  # ended, as a worker leaves it: no test's worker claims it
            s.get_one(Deploy, self.deploy).status = DeployStatus.RUNNING
        deploys.finish(w.db, self.deploy, "failed", {"code": "x", "message": "broken"})
        with w.db.read() as s:
            space = s.scalar(select(Space.id).where(Space.name == "other"))
            server = s.scalars(select(Server.id).where(Server.space_id == space)).first()
        self.server = server

    def _ticket(self, w: World, env: str) -> int:
        made = asyncio.run(
            tickets.create_ticket(w.db, w.settings, SYSTEM, self.project, env, "v1", title="x")
        )
        return int(made["id"])

    def state(self, w: World) -> list[tuple[Any, ...]]:
        with w.db.read() as s:
            rows: list[tuple[Any, ...]] = [
                (t.id, t.status, t.updated_at)
                for t in s.scalars(select(Ticket).where(Ticket.project_id == self.project))
            ]
            rows += [
                (d.id, d.status, d.cancel_reason)
                for d in s.scalars(select(Deploy).where(Deploy.project_id == self.project))
            ]
            rows += [(srv.id, srv.address) for srv in s.scalars(select(Server))]
            return rows


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, Elsewhere]]:
    w = build_world(Path(tmp_path_factory.mktemp("hidden-pages")))
    yield w, Elsewhere(w)
    w.db.dispose()


def _same(text: str, one: int, two: int) -> str:
    """``text`` with both ids written alike (either may be a digit of the other's page)."""
    return re.sub(rf"\b{two}\b", "ID", re.sub(rf"\b{one}\b", "ID", text))


def _alike(a: Any, b: Any, one: int, two: int) -> bool:
    return (
        a.status_code == b.status_code
        and _same(a.headers.get("location", ""), one, two)
        == _same(b.headers.get("location", ""), one, two)
        and _same(a.text, one, two) == _same(b.text, one, two)
    )


API = sorted((r[0], r[1]) for r in ROUTES if r[0] != "HEAD" and any(k in r[1] for k in ID_KINDS))


@pytest.mark.parametrize("role", ["developer", "master", "owner"])
def test_ticket_request_and_project_ids_of_another_space_answer_as_missing_ones(world, role):
    w, other = world
    before = other.state(w)
    headers = {"Authorization": f"Bearer {w.tokens[role]}"}
    differ = []
    with TestClient(create_app(w.settings, w.db, embedded_worker=False)) as client:
        for method, path in API:
            recipe = RECIPES.get((method, path))
            body = recipe(w, role)[2] if recipe is not None else None
            theirs = other.project if "{project}" in path else other.pending
            answers = []
            for given in (theirs, MISSING):
                url = path
                for key in ID_KINDS:
                    url = url.replace(key, str(given))
                for key, value in FILLERS.items():
                    url = url.replace(key, value)
                answers.append(client.request(method, url, json=body, headers=headers))
            if not _alike(answers[0], answers[1], theirs, MISSING):
                differ.append((method, path, answers[0].status_code, answers[1].status_code))
    assert differ == []
    assert other.state(w) == before


@pytest.mark.parametrize("role", ["developer", "master"])
def test_pages_and_forms_with_another_spaces_ids_answer_as_missing_ones(world, role):
    w, other = world
    before = other.state(w)
    client = browser(w, role)
    token = csrf_of(client)
    cases: list[tuple[str, str, int]] = []
    for ticket in (other.pending, other.approved):
        cases.append(("GET", "/s/acme/tickets/{}", ticket))
        for action in ("approve", "reject", "deploy", "cancel", "submit", "rollback"):
            cases.append(("POST", "/s/acme/tickets/{}/" + action, ticket))
    cases.append(("GET", "/s/acme/deploys/{}", other.deploy))
    for action in ("cancel", "retry", "rollback", "promote", "rollout/resume"):
        cases.append(("POST", "/s/acme/deploys/{}/" + action, other.deploy))
    if other.server is not None:
        cases += [
            ("GET", "/s/acme/servers/{}", other.server),
            ("GET", "/s/acme/servers/{}/trust", other.server),
            ("POST", "/s/acme/servers/{}/delete", other.server),
            ("POST", "/s/acme/servers/{}/check", other.server),
        ]
    differ = []
    for method, path, theirs in cases:
        data = {"csrf": token, "reason": "r", "comment": "c"} if method == "POST" else None
        answers = [
            client.request(method, path.format(given), data=data, follow_redirects=False)
            for given in (theirs, MISSING)
        ]
        if not _alike(answers[0], answers[1], theirs, MISSING):
            differ.append((method, path, answers[0].status_code, answers[1].status_code))
    assert differ == []
    assert other.state(w) == before
