"""Deleting a project through the API: masters only, never while a deploy of it is queued,
running or paused; its records stay readable and its name can be applied again. Attacked by
a developer, a reporter and a member of another space."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ferryman.app import create_app
from ferryman.config.project import parse_project
from ferryman.db.models import AuditEntry, Deploy, Project, Ticket
from ferryman.services import deploys, projects
from ferryman.services.audit import SYSTEM
from ferryman.services.project_deletion import freed_name
from tests.api.world import SPACE, World, build_world

P = "/api/v1"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, TestClient]]:
    w = build_world(tmp_path_factory.mktemp("project-deletion"))
    with TestClient(create_app(w.settings, w.db, embedded_worker=False)) as client:
        yield w, client


def _call(w: World, client: TestClient, who: str, method: str, url: str, body: Any = None) -> Any:
    return client.request(
        method, P + url, json=body, headers={"Authorization": f"Bearer {w.tokens[who]}"}
    )


def _row(w: World, project_id: int) -> Project:
    with w.db.read() as s:
        found = s.get(Project, project_id)
        assert found is not None
        s.expunge(found)
        return found


def test_a_master_deletes_a_project_and_its_records_stay_readable(world):
    w, client = world
    project_id = int(w.new_project())
    name = _row(w, project_id).name
    deploy = deploys.request_deploy(w.db, SYSTEM, project_id, "staging", "v1")
    deploys.finish(w.db, deploy.id, "failed", None)
    ticket = w.new_ticket()  # another project's: untouched
    open_one = w.new_ticket()
    with w.db.transaction() as s:  # an open ticket of this project
        row = s.get(Ticket, open_one)
        assert row is not None
        row.project_id = project_id
    gone = _call(w, client, "master", "DELETE", f"/projects/{SPACE}:{name}")
    assert gone.status_code == 204, gone.text
    # nothing finds it by name or id, nor lists it
    for ref in (name, f"{SPACE}:{name}", str(project_id)):
        assert _call(w, client, "master", "GET", f"/projects/{ref}").status_code == 404
    listed = _call(w, client, "super", "GET", "/projects").json()
    assert project_id not in {p["id"] for p in listed}
    assert (
        _call(
            w,
            client,
            "master",
            "POST",
            f"/projects/{project_id}/deploys",
            {"env": "staging", "ref": "v1"},
        ).status_code
        == 404
    )
    # its deploy and the audit log still read, with the freed name
    shown = _call(w, client, "master", "GET", f"/deploys/{deploy.id}")
    assert shown.status_code == 200 and shown.json()["project"] == freed_name(name, project_id)
    with w.db.read() as s:
        entry = s.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "project.delete")
            .order_by(AuditEntry.id.desc())
        ).first()
        assert entry is not None and entry.actor == "master-user"
        assert entry.target == f"space:{SPACE}/project:{name}"
        cancelled, pending = s.get(Ticket, open_one), s.get(Ticket, ticket)
        kept = s.get(Deploy, deploy.id)
        assert cancelled is not None and pending is not None and kept is not None
        assert cancelled.status == "cancelled"
        assert pending.status == "pending_approval"
        assert kept.project_id == project_id
    assert _row(w, project_id).deleted_at is not None
    # the name and its paths are free again: applying it makes a new project on the same
    # webroot and releases (where the old releases still are on the hosts)
    config = w.config(name)
    again, created = projects.apply_project(w.db, SYSTEM, parse_project(config))
    assert created and again.id != project_id and again.name == name


def test_a_project_with_a_queued_deploy_is_not_deleted(world):
    w, client = world
    project_id = int(w.new_project())
    queued = deploys.request_deploy(w.db, SYSTEM, project_id, "staging", "v1")
    refused = _call(w, client, "master", "DELETE", f"/projects/{project_id}")
    assert refused.status_code == 409
    assert f"#{queued.id}" in refused.json()["error"]["message"]
    assert _row(w, project_id).deleted_at is None
    assert _call(w, client, "master", "GET", f"/projects/{project_id}").status_code == 200
    deploys.request_cancel(w.db, SYSTEM, queued.id)
    assert _call(w, client, "master", "DELETE", f"/projects/{project_id}").status_code == 204


@pytest.mark.parametrize(("who", "status"), [("developer", 403), ("reporter", 403), ("other", 404)])
def test_nobody_below_master_deletes_a_project(world, who, status):
    w, client = world
    project_id = int(w.new_project())
    refused = _call(w, client, who, "DELETE", f"/projects/{project_id}")
    assert refused.status_code == status, refused.text
    assert _row(w, project_id).deleted_at is None
    assert _call(w, client, "master", "GET", f"/projects/{project_id}").status_code == 200


def test_a_long_name_is_freed_within_the_column():
    assert freed_name("a" * 64, 123456) == "a" * 57 + "~123456"
    assert len(freed_name("a" * 64, 123456)) == 64
    assert freed_name("shop", 7) == "shop~7"
