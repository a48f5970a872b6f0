"""A space's members page names everyone who holds a role there: a user who holds one only
through a group is listed with the group that gives it (and no form to change or remove a
membership they do not have); a direct member whom a group lifts higher sees both roles."""

from __future__ import annotations

import pytest

from ferryman.services import groups, users
from ferryman.services.audit import SYSTEM
from tests.api.world import PASSWORD, SPACE, World, build_world, fresh
from tests.web.test_pages import browser


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("members-groups"))


def test_the_members_page_lists_a_user_who_holds_a_role_only_through_a_group(world):
    w = world
    only = users.create_user(w.db, fresh("through"), PASSWORD)
    group = groups.create_group(w.db, SYSTEM, fresh("qa"))["name"]
    groups.add_member(w.db, SYSTEM, group, only.username)
    groups.add_member(w.db, SYSTEM, group, w.actors["developer"].username)
    groups.set_space_group(w.db, SYSTEM, SPACE, group, "master")

    page = browser(w, "owner").get(f"/s/{SPACE}/members")
    assert page.status_code == 200
    row = page.text.split(f"<td>{only.username}", 1)[1].split("</tr>", 1)[0]
    assert "through" in row and group in row and "(master)" in row
    # no membership of their own: nothing to change or remove for them
    assert "<select" not in row and f"/members/{only.username}/remove" not in row
    # the developer is lifted to master by the group: their own role stays editable
    lifted = page.text.split(f"<td>{w.actors['developer'].username}", 1)[1].split("</tr>", 1)[0]
    assert "<select" in lifted and "holds master" in lifted
