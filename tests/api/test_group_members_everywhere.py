"""A user who is in a space only through a group (Walle 2's 用户组) counts everywhere a direct
member with that role counts: the audit log's reader check, who a submitted ticket notifies,
the user list, and per-project role overrides (which replace a group role exactly as they
replace a direct one). Attacked from the other side: taking the user out of the group, or the
group out of the space, takes each of these away at once, and a group added to another space
gives nothing here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ferryman.app import create_app
from ferryman.db.models import NotifyDelivery, Project
from ferryman.services import group_roles, groups, notifications, projects, spaces, users
from ferryman.services.audit import SYSTEM
from tests.api.world import PASSWORD, SPACE, World, build_world, fresh

P = "/api/v1"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, TestClient]]:
    w = build_world(tmp_path_factory.mktemp("group-members"))
    with TestClient(create_app(w.settings, w.db, embedded_worker=False)) as client:
        yield w, client


def _call(w: World, client: TestClient, who: str, method: str, url: str, body: Any = None) -> Any:
    token = w.tokens[who]
    return client.request(method, P + url, json=body, headers={"Authorization": f"Bearer {token}"})


def _grouped(w: World, role: str, space: str = SPACE) -> tuple[str, str]:
    """A new user of no space, with an email and a token, put in ``space`` with ``role``
    only through a new group: (user, group)."""
    name = fresh("gina")
    actor = users.create_user(w.db, name, PASSWORD, email=f"{name}@example.com")
    w.tokens[name] = users.create_token(w.db, actor, "test", ["read", "write"])["token"]
    group = fresh("team")
    groups.create_group(w.db, SYSTEM, group)
    groups.add_member(w.db, SYSTEM, group, name)
    groups.set_space_group(w.db, SYSTEM, space, group, role)
    return name, group


def _approvers(w: World, project_id: int) -> list[str]:
    with w.db.read() as s:
        project = s.get(Project, project_id)
        assert project is not None
        return notifications.approvers_emails(s, project, None)


def _audit_spaces(w: World, client: TestClient, who: str) -> set[int | None]:
    answer = _call(w, client, who, "GET", "/audit?limit=1000")
    assert answer.status_code == 200, answer.text
    return {entry["space_id"] for entry in answer.json()}


# --- the audit log -------------------------------------------------------------------------------


def test_a_group_master_reads_the_spaces_audit_log_until_they_leave_the_group(world):
    w, client = world
    gina, group = _grouped(w, "master")
    ours = _call(w, client, gina, "GET", f"/audit?space={SPACE}")
    assert ours.status_code == 200 and ours.json(), ours.text
    space_id = ours.json()[0]["space_id"]
    assert _audit_spaces(w, client, gina) == {space_id}  # without ?space=: their spaces
    groups.remove_member(w.db, SYSTEM, group, gina)
    assert _call(w, client, gina, "GET", f"/audit?space={SPACE}").status_code == 404
    assert _audit_spaces(w, client, gina) == set()


def test_a_group_below_master_or_of_another_space_reads_no_audit_log_here(world):
    w, client = world
    dev, _ = _grouped(w, "developer")
    assert _call(w, client, dev, "GET", f"/audit?space={SPACE}").status_code == 403
    assert _audit_spaces(w, client, dev) == set()
    elsewhere, _ = _grouped(w, "owner", space="other")
    assert _call(w, client, elsewhere, "GET", f"/audit?space={SPACE}").status_code == 404
    other_id = _call(w, client, elsewhere, "GET", "/audit?space=other").json()[0]["space_id"]
    assert _audit_spaces(w, client, elsewhere) == {other_id}


def test_removing_the_group_from_the_space_takes_the_audit_log_away(world):
    w, client = world
    gina, group = _grouped(w, "owner")
    assert _call(w, client, gina, "GET", f"/audit?space={SPACE}").status_code == 200
    groups.remove_space_group(w.db, SYSTEM, SPACE, group)
    assert _call(w, client, gina, "GET", f"/audit?space={SPACE}").status_code == 404
    assert _audit_spaces(w, client, gina) == set()


# --- who is notified -----------------------------------------------------------------------------


def _submitted_to(w: World) -> list[str]:
    """The recipients of the newest ``ticket.submitted`` delivery."""
    with w.db.read() as s:
        row = s.scalars(
            select(NotifyDelivery)
            .where(NotifyDelivery.event == "ticket.submitted")
            .order_by(NotifyDelivery.id.desc())
        ).first()
        assert row is not None
        return list(row.message["recipients"])


def test_a_submitted_ticket_notifies_the_masters_a_group_made_and_no_one_else(world):
    w, client = world
    w.new_channel()
    gina, group = _grouped(w, "master")
    dev, _ = _grouped(w, "developer")
    elsewhere, _ = _grouped(w, "owner", space="other")
    project = w.new_project()
    body = {"project": project, "env": "production", "ref": "v1", "title": "t"}
    assert _call(w, client, "developer", "POST", "/tickets", body).status_code == 201
    sent = _submitted_to(w)
    assert f"{gina}@example.com" in sent
    assert f"{dev}@example.com" not in sent and f"{elsewhere}@example.com" not in sent
    groups.remove_member(w.db, SYSTEM, group, gina)
    assert _call(w, client, "developer", "POST", "/tickets", body).status_code == 201
    assert f"{gina}@example.com" not in _submitted_to(w)


def test_a_project_override_lowers_or_raises_a_group_role_for_whom_it_notifies(world):
    w, _client = world
    gina, group = _grouped(w, "master")
    dev, _ = _grouped(w, "developer")
    project = w.new_project()
    projects.set_project_member(w.db, SYSTEM, project, gina, "developer")
    projects.set_project_member(w.db, SYSTEM, project, dev, "master")
    emails = _approvers(w, int(project))
    assert f"{gina}@example.com" not in emails and f"{dev}@example.com" in emails
    # the override stays, but without the group it gives nothing
    projects.set_project_member(w.db, SYSTEM, project, gina, "owner")
    groups.remove_space_group(w.db, SYSTEM, SPACE, group)
    assert f"{gina}@example.com" not in _approvers(w, int(project))


# --- the user list -------------------------------------------------------------------------------


def _listed(w: World, client: TestClient, who: str) -> set[str]:
    answer = _call(w, client, who, "GET", "/users")
    assert answer.status_code == 200, answer.text
    return {row["username"] for row in answer.json()}


def test_a_group_member_and_the_spaces_members_see_each_other_in_the_user_list(world):
    w, client = world
    gina, group = _grouped(w, "reporter")
    assert {gina, "owner-user", "reporter-user"} <= _listed(w, client, gina)
    assert gina in _listed(w, client, "reporter")
    assert "other-user" not in _listed(w, client, gina)  # another space's owner
    groups.remove_member(w.db, SYSTEM, group, gina)
    assert _listed(w, client, gina) == {gina}
    assert gina not in _listed(w, client, "reporter")


def test_the_space_list_shows_a_group_members_role_there(world):
    w, client = world
    gina, group = _grouped(w, "developer")
    spaces.set_member(w.db, SYSTEM, SPACE, gina, "reporter")  # her own, lower one
    roles = {s["name"]: s["role"] for s in _call(w, client, gina, "GET", "/spaces").json()}
    assert roles == {SPACE: "developer"}
    groups.remove_space_group(w.db, SYSTEM, SPACE, group)
    roles = {s["name"]: s["role"] for s in _call(w, client, gina, "GET", "/spaces").json()}
    assert roles == {SPACE: "reporter"}


def test_a_group_of_another_space_shows_nobody_of_this_one(world):
    w, client = world
    elsewhere, _ = _grouped(w, "owner", space="other")
    listed = _listed(w, client, elsewhere)
    assert "other-user" in listed and "owner-user" not in listed
    assert elsewhere not in _listed(w, client, "owner")


# --- per-project role overrides ------------------------------------------------------------------


def test_a_group_member_gets_a_project_override_that_replaces_the_group_role(world):
    w, client = world
    gina, group = _grouped(w, "reporter")
    project = w.new_project()
    body = {"project": project, "env": "staging", "ref": "v1", "title": "t"}
    assert _call(w, client, gina, "POST", "/tickets", body).status_code == 403
    given = _call(
        w,
        client,
        "owner",
        "POST",
        f"/projects/{project}/members",
        {"user": gina, "role": "developer"},
    )
    assert given.status_code == 200, given.text
    assert _call(w, client, gina, "POST", "/tickets", body).status_code == 201
    listed = _call(w, client, "owner", "GET", f"/projects/{project}/members").json()
    assert {"user_id": listed[0]["user_id"], "username": gina, "role": "developer"} in listed
    # the group's role goes up; the override still decides for this project, as for a member
    groups.set_space_group(w.db, SYSTEM, SPACE, group, "master")
    with w.db.read() as s:
        row = s.get(Project, int(project))
        assert row is not None
        assert group_roles.project_roles(s, row)[listed[0]["user_id"]].name == "developer"
    # out of the group: the override gives nothing and no new one can be set
    groups.remove_member(w.db, SYSTEM, group, gina)
    assert _call(w, client, gina, "POST", "/tickets", body).status_code == 404
    again = _call(
        w, client, "owner", "POST", f"/projects/{project}/members", {"user": gina, "role": "owner"}
    )
    assert again.status_code == 404


def test_no_override_for_a_member_of_another_spaces_group(world):
    w, client = world
    elsewhere, _ = _grouped(w, "owner", space="other")
    project = w.new_project()
    refused = _call(
        w,
        client,
        "owner",
        "POST",
        f"/projects/{project}/members",
        {"user": elsewhere, "role": "developer"},
    )
    assert refused.status_code == 404
    body = {"project": project, "env": "staging", "ref": "v1", "title": "t"}
    assert _call(w, client, elsewhere, "POST", "/tickets", body).status_code == 404
