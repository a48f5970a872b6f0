"""User groups (用户组): a group added to a space with a role gives it to its members; a
member gains access when they join and loses it when they leave, and removing the group from
the space (or deleting it) takes it from all of them at once. A member's own higher role wins.
Attacked by an owner trying to manage groups and a developer trying to add one to a space."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ferryman.app import create_app
from ferryman.services import spaces, users
from ferryman.services.audit import SYSTEM
from tests.api.world import PASSWORD, SPACE, World, build_world, fresh

P = "/api/v1"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, TestClient]]:
    w = build_world(tmp_path_factory.mktemp("groups"))
    with TestClient(create_app(w.settings, w.db, embedded_worker=False)) as client:
        yield w, client


def _call(w: World, client: TestClient, who: str, method: str, url: str, body: Any = None) -> Any:
    token = w.tokens[who]
    return client.request(method, P + url, json=body, headers={"Authorization": f"Bearer {token}"})


def _newcomer(w: World) -> str:
    """A user of no space, with a token in ``w.tokens``."""
    name = fresh("carol")
    actor = users.create_user(w.db, name, PASSWORD)
    w.tokens[name] = users.create_token(w.db, actor, "test", ["read", "write"])["token"]
    return name


def _can(w: World, client: TestClient, who: str) -> dict[str, int]:
    """What ``who`` gets: reading the space, its tickets, creating a ticket, approving."""
    project = w.new_project()
    ticket = w.new_ticket()
    body = {"project": project, "env": "staging", "ref": "v1", "title": "t"}
    return {
        "read": _call(w, client, who, "GET", f"/spaces/{SPACE}").status_code,
        "ticket": _call(w, client, who, "POST", "/tickets", body).status_code,
        "approve": _call(w, client, who, "POST", f"/tickets/{ticket}/approve", {}).status_code,
    }


def test_a_member_gains_and_loses_the_groups_role_as_they_join_and_leave(world):
    w, client = world
    carol = _newcomer(w)
    assert _can(w, client, carol) == {"read": 404, "ticket": 404, "approve": 404}
    made = _call(
        w, client, "super", "POST", "/groups", {"name": fresh("ops"), "display_name": "运维组"}
    )
    assert made.status_code == 201, made.text
    group = made.json()["name"]
    added = _call(
        w, client, "owner", "PUT", f"/spaces/{SPACE}/groups/{group}", {"role": "developer"}
    )
    assert added.status_code == 200, added.text
    joined = _call(w, client, "super", "PUT", f"/groups/{group}/members/{carol}")
    assert joined.status_code == 200 and joined.json()["members"] == [carol]
    assert _can(w, client, carol) == {"read": 200, "ticket": 201, "approve": 403}
    assert SPACE in {s["name"] for s in _call(w, client, carol, "GET", "/spaces").json()}
    # the group's role goes up: so does hers
    _call(w, client, "owner", "PUT", f"/spaces/{SPACE}/groups/{group}", {"role": "master"})
    assert _can(w, client, carol)["approve"] == 200
    # she leaves: nothing is left of it
    left = _call(w, client, "super", "DELETE", f"/groups/{group}/members/{carol}")
    assert left.status_code == 204
    assert _can(w, client, carol) == {"read": 404, "ticket": 404, "approve": 404}
    assert SPACE not in {s["name"] for s in _call(w, client, carol, "GET", "/spaces").json()}


def test_removing_the_group_from_the_space_or_deleting_it_takes_the_role_away(world):
    w, client = world
    carol, dave = _newcomer(w), _newcomer(w)
    group = _call(w, client, "super", "POST", "/groups", {"name": fresh("qa")}).json()["name"]
    for who in (carol, dave):
        _call(w, client, "super", "PUT", f"/groups/{group}/members/{who}")
    _call(w, client, "owner", "PUT", f"/spaces/{SPACE}/groups/{group}", {"role": "reporter"})
    listed = _call(w, client, "reporter", "GET", f"/spaces/{SPACE}/groups").json()
    assert {
        "group": group,
        "display_name": "",
        "role": "reporter",
        "members": sorted([carol, dave]),
    } in listed
    assert _can(w, client, carol)["read"] == _can(w, client, dave)["read"] == 200
    assert _call(w, client, "owner", "DELETE", f"/spaces/{SPACE}/groups/{group}").status_code == 204
    assert _can(w, client, carol)["read"] == _can(w, client, dave)["read"] == 404
    # back in the space, then the group deleted: gone again
    _call(w, client, "owner", "PUT", f"/spaces/{SPACE}/groups/{group}", {"role": "developer"})
    assert _can(w, client, carol)["ticket"] == 201
    assert _call(w, client, "super", "DELETE", f"/groups/{group}").status_code == 204
    assert _can(w, client, carol)["read"] == 404
    assert _call(w, client, "super", "GET", f"/groups/{group}").status_code == 404


def test_a_members_own_higher_role_wins_over_the_groups(world):
    w, client = world
    erin = _newcomer(w)
    spaces.set_member(w.db, SYSTEM, SPACE, erin, "master")
    group = _call(w, client, "super", "POST", "/groups", {"name": fresh("low")}).json()["name"]
    _call(w, client, "super", "PUT", f"/groups/{group}/members/{erin}")
    _call(w, client, "owner", "PUT", f"/spaces/{SPACE}/groups/{group}", {"role": "reporter"})
    assert _can(w, client, erin)["approve"] == 200
    # and a group's higher role wins over her own lower one
    spaces.set_member(w.db, SYSTEM, SPACE, erin, "reporter")
    _call(w, client, "owner", "PUT", f"/spaces/{SPACE}/groups/{group}", {"role": "developer"})
    assert _can(w, client, erin) == {"read": 200, "ticket": 201, "approve": 403}


def test_only_superusers_manage_groups_and_only_owners_add_them_to_a_space(world):
    w, client = world
    group = _call(w, client, "super", "POST", "/groups", {"name": fresh("sec")}).json()["name"]
    developer = w.actors["developer"].username
    for who in ("owner", "master", "developer"):
        assert _call(w, client, who, "POST", "/groups", {"name": fresh("mine")}).status_code == 403
        joined = _call(w, client, who, "PUT", f"/groups/{group}/members/{developer}")
        assert joined.status_code == 403
    for who in ("master", "developer"):  # no raising themselves through a group
        added = _call(w, client, who, "PUT", f"/spaces/{SPACE}/groups/{group}", {"role": "owner"})
        assert added.status_code == 403
    # an owner of another space cannot add anyone to this one
    assert (
        _call(
            w, client, "other", "PUT", f"/spaces/{SPACE}/groups/{group}", {"role": "owner"}
        ).status_code
        == 404
    )
    assert _call(w, client, "super", "GET", f"/groups/{group}").json()["spaces"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"name": "-rf"},
        {"name": "a b"},
        {"name": "ops", "display_name": "a\u202eb"},
        {"name": "ops", "display_name": "x\ny"},
        {"name": "ops", "extra": 1},
    ],
)
def test_a_bad_group_is_refused_with_a_clear_422(world, body):
    w, client = world
    refused = _call(w, client, "super", "POST", "/groups", body)
    assert refused.status_code == 422, refused.text


def test_a_group_role_that_is_not_a_role_is_refused(world):
    w, client = world
    group = _call(w, client, "super", "POST", "/groups", {"name": fresh("bad")}).json()["name"]
    refused = _call(w, client, "owner", "PUT", f"/spaces/{SPACE}/groups/{group}", {"role": "god"})
    assert refused.status_code == 422


def test_a_renamed_group_keeps_its_members_and_spaces_and_a_taken_name_is_refused(world):
    w, client = world
    carol = _newcomer(w)
    old, new = fresh("ops"), fresh("sre")
    taken = _call(w, client, "super", "POST", "/groups", {"name": fresh("dba")}).json()["name"]
    _call(w, client, "super", "POST", "/groups", {"name": old})
    _call(w, client, "super", "PUT", f"/groups/{old}/members/{carol}")
    _call(w, client, "owner", "PUT", f"/spaces/{SPACE}/groups/{old}", {"role": "developer"})

    renamed = _call(w, client, "super", "PATCH", f"/groups/{old}", {"name": new})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["members"] == [carol]
    assert renamed.json()["spaces"] == [{"space": SPACE, "role": "developer"}]
    assert _call(w, client, "super", "GET", f"/groups/{old}").status_code == 404
    assert _can(w, client, carol)["ticket"] == 201  # the role came along

    for body, status in (
        ({"name": taken}, 409),
        ({"name": "bad name"}, 422),
        ({"display_name": "ops\u202eevil"}, 422),
        ({"description": "x" * 501}, 422),
    ):
        refused = _call(w, client, "super", "PATCH", f"/groups/{new}", body)
        assert refused.status_code == status, (body, refused.text)
    kept = _call(w, client, "super", "GET", f"/groups/{new}").json()
    assert (kept["name"], kept["display_name"], kept["description"]) == (new, "", "")
    # an owner manages the space's groups, not the groups themselves
    assert _call(w, client, "owner", "PATCH", f"/groups/{new}", {"name": "mine"}).status_code == 403
    assert _call(w, client, "super", "GET", f"/groups/{new}").json()["name"] == new
