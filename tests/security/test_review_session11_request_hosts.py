"""Review, session 11: ``PUT /api/v1/project/{id}`` — "what is left out stays". A request
that asked for a host the environment did not have added it to the environment; once a
master took that host out of the environment again (decommissioned, handed to another team),
any later ``PUT`` of the request that left ``hosts`` out — a new title, a new window — put
the host back into the project's configuration (and re-registered it as a server), because
the request's kept hosts were asked for again as new ones. A change of the title must not
change what runs where."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ferryman.app import create_app
from ferryman.config.project import parse_project
from ferryman.db.models import AuditEntry
from ferryman.services import projects
from ferryman.services.audit import SYSTEM
from tests.api.world import World, build_world

P = "/api/v1"
GONE = "127.0.0.9:1"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, TestClient]]:
    w = build_world(tmp_path_factory.mktemp("request-hosts"))
    with TestClient(create_app(w.settings, w.db, embedded_worker=False)) as client:
        yield w, client


def _call(w: World, client: TestClient, who: str, method: str, url: str, body: Any) -> Any:
    headers = {"Authorization": f"Bearer {w.tokens[who]}"}
    return client.request(method, P + url, json=body, headers=headers)


def _production_hosts(w: World, name: str) -> list[str]:
    found, _ = projects.get_project(w.db, SYSTEM, f"acme:{name}")
    return list(found.config["environments"]["production"]["hosts"])


def _project_updates(w: World, name: str) -> int:
    with w.db.read() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(
                    AuditEntry.action == "project.update",
                    AuditEntry.target.like(f"%/project:{name}"),
                )
            )
            or 0
        )


def test_a_put_that_leaves_hosts_out_never_puts_a_removed_host_back(world):
    w, client = world
    name = projects.get_project(w.db, SYSTEM, int(w.new_project()))[0].name
    body = {"project": f"acme:{name}", "env": "production", "version": "v1", "hosts": [GONE]}
    made = _call(w, client, "master", "POST", "/project", body)
    assert made.status_code == 201, made.text
    assert GONE in _production_hosts(w, name)  # the request added it, as asked
    # another master takes the host out of production again
    config = projects.get_project(w.db, SYSTEM, f"acme:{name}")[0].config
    production = {**config["environments"]["production"], "hosts": ["127.0.0.1:1"]}
    config = {**config, "environments": {**config["environments"], "production": production}}
    projects.apply_project(w.db, SYSTEM, parse_project(config))
    updates = _project_updates(w, name)

    changed = _call(w, client, "master", "PUT", f"/project/{made.json()['id']}", {"title": "t2"})

    assert _production_hosts(w, name) == ["127.0.0.1:1"], changed.text
    assert _project_updates(w, name) == updates  # the project's configuration was not touched
    assert changed.status_code == 409, changed.text
    assert GONE in changed.json()["error"]["message"]
