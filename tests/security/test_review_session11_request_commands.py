"""Review, session 11: a release request's commands (``build``, ``test``, ``start``,
``stop``) are "text of at most 8000 characters: new lines and tabs, no other control
character" (docs/pull-mode.md). The check refused C0 controls and DEL only: the C1 controls
(U+0080-U+009F) — CSI (U+009B) starts a terminal escape sequence where a terminal reads it,
NEL (U+0085) is a line break to Python but not to bash — went into the project's tasks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ferryman.app import create_app
from ferryman.db.models import Ticket
from ferryman.services import projects
from ferryman.services.audit import SYSTEM
from tests.api.world import World, build_world

P = "/api/v1"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, TestClient]]:
    w = build_world(tmp_path_factory.mktemp("request-commands"))
    with TestClient(create_app(w.settings, w.db, embedded_worker=False)) as client:
        yield w, client


def _tickets(w: World) -> int:
    with w.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(Ticket)) or 0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("build", "make\x9b2J\x9b1;1H all clean"),  # CSI: clear the screen of whoever reads it
        ("stop", "systemctl stop shop\x85rm -rf /srv/www"),  # NEL
        ("test", "make test\x90secret\x9c"),  # DCS … ST
    ],
)
def test_a_command_with_a_c1_control_character_is_refused_and_nothing_is_written(
    world, field: str, value: str
):
    w, client = world
    name = projects.get_project(w.db, SYSTEM, int(w.new_project()))[0].name
    before = projects.get_project(w.db, SYSTEM, f"acme:{name}")[0].config
    tickets = _tickets(w)
    body: dict[str, Any] = {
        "project": f"acme:{name}",
        "env": "production",
        "version": "v1",
        field: value,
    }
    answer = client.post(
        P + "/project", json=body, headers={"Authorization": f"Bearer {w.tokens['master']}"}
    )
    assert answer.status_code == 422, answer.text
    assert "control characters" in answer.json()["error"]["message"]
    assert projects.get_project(w.db, SYSTEM, f"acme:{name}")[0].config == before
    assert _tickets(w) == tickets
