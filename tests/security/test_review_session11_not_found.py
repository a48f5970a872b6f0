"""Review, session 11: a space a user is not in does not exist for them — and the API error
envelope's ``template`` and ``params`` (sent beside the English message since sessions 9-10)
must not say otherwise. A project or space that exists in another space was refused with
``no %(what)s`` (``authz.require``), one that does not exist with ``no project %(name)s`` /
``no space %(space)s``: the English read the same, the templates told them apart, so any
signed-in user could test names of other spaces' projects and spaces one request each."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ferryman.app import create_app
from tests.api.world import World, build_world

P = "/api/v1"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, TestClient]]:
    w = build_world(tmp_path_factory.mktemp("not-found"))
    with TestClient(create_app(w.settings, w.db, embedded_worker=False)) as client:
        yield w, client


def _refusal(w: World, client: TestClient, url: str, name: str) -> tuple[int, str]:
    """The status and the whole body of a refusal, the asked name written as NAME."""
    answer = client.get(P + url, headers={"Authorization": f"Bearer {w.tokens['other']}"})
    body: Any = answer.json()
    return answer.status_code, json.dumps(body, sort_keys=True).replace(name, "NAME")


def test_another_spaces_project_answers_exactly_like_a_project_that_does_not_exist(world):
    w, client = world
    # "other" owns the space "other" and is no member of "acme", where "site" lives
    existing = _refusal(w, client, "/projects/acme:site", "acme:site")
    missing = _refusal(w, client, "/projects/acme:no-such-project", "acme:no-such-project")
    assert existing[0] == missing[0] == 404
    assert existing[1] == missing[1]
    assert "NAME" in existing[1]


def test_another_spaces_project_id_answers_like_an_id_nobody_has(world):
    w, client = world
    existing = _refusal(w, client, f"/projects/{w.project_id}", str(w.project_id))
    missing = _refusal(w, client, "/projects/987654", "987654")
    assert existing[0] == missing[0] == 404
    assert existing[1] == missing[1]


def test_a_space_one_is_not_in_answers_exactly_like_a_space_that_does_not_exist(world):
    w, client = world
    existing = _refusal(w, client, "/spaces/acme", "acme")
    missing = _refusal(w, client, "/spaces/no-such-space", "no-such-space")
    assert existing[0] == missing[0] == 404
    assert existing[1] == missing[1]


def test_another_spaces_ticket_and_release_request_answer_like_ids_nobody_has(world):
    w, client = world
    ticket = w.new_ticket()
    existing = _refusal(w, client, f"/tickets/{ticket}", str(ticket))
    missing = _refusal(w, client, "/tickets/987654", "987654")
    assert existing[0] == missing[0] == 404
    assert existing[1] == missing[1]
    existing = _refusal(w, client, f"/project/{ticket}", str(ticket))
    missing = _refusal(w, client, "/project/987654", "987654")
    assert existing[0] == missing[0] == 404
    assert existing[1] == missing[1]
