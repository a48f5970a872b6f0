"""User groups in the browser (Walle 2's 用户组): the groups page and a space's groups on its
members page, in English and Chinese, with the buttons each role may use — and a developer
or an owner posting the forms they may not use is refused with nothing changed."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import func, select

from ferryman.db.models import SpaceGroup, UserGroup, UserGroupMember
from ferryman.services import groups
from ferryman.services.audit import SYSTEM
from tests.api.world import SPACE, World, build_world
from tests.web.test_pages import browser, csrf_of

_names = itertools.count(1)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("groups"))


def fresh_group(world: World, space: str = "", role: str = "developer") -> str:
    name = f"ops{next(_names)}"
    groups.create_group(world.db, SYSTEM, name, display_name="运维组")
    groups.add_member(world.db, SYSTEM, name, world.actors["author"].username)
    if space:
        groups.set_space_group(world.db, SYSTEM, space, name, role)
    return name


def counts(world: World) -> tuple[int, int, int]:
    with world.db.read() as s:
        return (
            s.scalar(select(func.count()).select_from(UserGroup)) or 0,
            s.scalar(select(func.count()).select_from(UserGroupMember)) or 0,
            s.scalar(select(func.count()).select_from(SpaceGroup)) or 0,
        )


def space_roles(world: World) -> dict[str, str]:
    return {g["group"]: g["role"] for g in groups.list_space_groups(world.db, SYSTEM, SPACE)}


def test_a_superuser_creates_a_group_adds_a_member_and_deletes_it_in_the_browser(world):
    root = browser(world, "super")
    token = csrf_of(root, "/groups")
    made = root.post(
        "/groups",
        data={
            "csrf": token,
            "name": "web-ops",
            "display_name": "网站运维",
            "description": "on call",
        },
        follow_redirects=False,
    )
    assert made.status_code == 303
    added = root.post(
        "/groups/web-ops/members",
        data={"csrf": token, "username": world.actors["developer"].username},
        follow_redirects=False,
    )
    assert added.status_code == 303
    shown = root.get("/groups").text
    assert "网站运维" in shown and world.actors["developer"].username in shown
    assert groups.get_group(world.db, SYSTEM, "web-ops")["members"] == [
        world.actors["developer"].username
    ]
    removed = root.post(
        f"/groups/web-ops/members/{world.actors['developer'].username}/remove",
        data={"csrf": token},
        follow_redirects=False,
    )
    assert removed.status_code == 303
    assert groups.get_group(world.db, SYSTEM, "web-ops")["members"] == []
    gone = root.post("/groups/web-ops/delete", data={"csrf": token}, follow_redirects=False)
    assert gone.status_code == 303
    assert "web-ops" not in [g["name"] for g in groups.list_groups(world.db, SYSTEM)]


def test_a_bad_group_name_is_shown_at_the_form_with_what_was_typed(world):
    root = browser(world, "super")
    token = csrf_of(root, "/groups")
    before = counts(world)
    refused = root.post(
        "/groups",
        data={"csrf": token, "name": "no spaces", "display_name": "夜班", "description": "kept"},
    )
    assert refused.status_code == 422
    assert 'id="new-group"' in refused.text and 'role="alert"' in refused.text
    assert "invalid group name" in refused.text
    assert 'value="no spaces"' in refused.text and 'value="夜班"' in refused.text
    assert 'value="kept"' in refused.text
    missing = root.post("/groups", data={"csrf": token, "name": "  "})
    assert missing.status_code == 422 and "Give the group a name." in missing.text
    assert counts(world) == before


def test_adding_an_unknown_user_to_a_group_says_so_at_that_groups_form(world):
    name = fresh_group(world)
    root = browser(world, "super")
    token = csrf_of(root, "/groups")
    refused = root.post(f"/groups/{name}/members", data={"csrf": token, "username": "nobody-x"})
    assert refused.status_code == 404
    assert "nobody-x" in refused.text and 'aria-invalid="true"' in refused.text
    assert groups.get_group(world.db, SYSTEM, name)["members"] == [world.actors["author"].username]


def test_the_groups_page_reads_in_chinese(world):
    fresh_group(world, SPACE)
    chinese = browser(world, "super", language="zh-CN,zh;q=0.9")
    shown = chinese.get("/groups").text
    assert 'lang="zh-CN"' in shown and "用户组" in shown and "新建用户组" in shown
    members = chinese.get(f"/s/{SPACE}/members").text
    assert "用户组" in members and "开发者" in members


def test_a_developer_reads_the_groups_but_sees_no_buttons_and_posting_them_changes_nothing(world):
    name = fresh_group(world, SPACE)
    developer = browser(world, "developer")
    shown = developer.get("/groups")
    assert shown.status_code == 200 and name in shown.text
    assert "/groups/" + name + "/delete" not in shown.text
    assert 'action="/groups"' not in shown.text
    assert f'action="/groups/{name}/members"' not in shown.text
    members = developer.get(f"/s/{SPACE}/members").text
    assert name in members and f"/s/{SPACE}/groups" not in members
    token = csrf_of(developer)
    before, roles = counts(world), space_roles(world)
    attempts = [
        ("/groups", {"name": "sneaky"}),
        (f"/groups/{name}/members", {"username": world.actors["developer"].username}),
        (f"/groups/{name}/members/{world.actors['author'].username}/remove", {}),
        (f"/groups/{name}/delete", {}),
        (f"/s/{SPACE}/groups", {"group": name, "role": "owner"}),
        (f"/s/{SPACE}/groups/{name}/remove", {}),
    ]
    for url, data in attempts:
        refused = developer.post(url, data={"csrf": token, **data})
        assert refused.status_code == 403, (url, refused.text[:300])
    assert counts(world) == before and space_roles(world) == roles


def test_an_owner_gives_a_group_a_role_changes_it_and_takes_it_away(world):
    name = fresh_group(world)
    owner = browser(world, "owner")
    page = owner.get(f"/s/{SPACE}/members").text
    assert f'<option value="{name}"' in page  # a group with no role here can be added
    assert "/groups/" + name + "/delete" not in owner.get("/groups").text  # superusers only
    token = csrf_of(owner)
    given = owner.post(
        f"/s/{SPACE}/groups",
        data={"csrf": token, "group": name, "role": "master"},
        follow_redirects=False,
    )
    assert given.status_code == 303 and space_roles(world)[name] == "master"
    changed = owner.post(
        f"/s/{SPACE}/groups",
        data={"csrf": token, "group": name, "role": "reporter"},
        follow_redirects=False,
    )
    assert changed.status_code == 303 and space_roles(world)[name] == "reporter"
    bad = owner.post(f"/s/{SPACE}/groups", data={"csrf": token, "group": name, "role": "king"})
    assert bad.status_code == 422 and space_roles(world)[name] == "reporter"
    assert 'id="space-groups"' in bad.text and 'role="alert"' in bad.text
    taken = owner.post(
        f"/s/{SPACE}/groups/{name}/remove", data={"csrf": token}, follow_redirects=False
    )
    assert taken.status_code == 303 and name not in space_roles(world)


def test_a_group_form_without_the_csrf_token_is_refused(world):
    root = browser(world, "super")
    before = counts(world)
    assert root.post("/groups", data={"csrf": "forged", "name": "forged"}).status_code == 403
    assert counts(world) == before


def test_a_master_cannot_give_a_group_a_role_in_the_space(world):
    name = fresh_group(world)
    master = browser(world, "master")
    token = csrf_of(master)
    refused = master.post(
        f"/s/{SPACE}/groups", data={"csrf": token, "group": name, "role": "owner"}
    )
    assert refused.status_code == 403
    assert name not in space_roles(world)


def test_a_superuser_renames_a_group_and_a_developer_posting_the_form_changes_nothing(world):
    name = fresh_group(world, SPACE)
    developer = browser(world, "developer")
    refused = developer.post(
        f"/groups/{name}/edit", data={"csrf": csrf_of(developer), "name": "hijacked"}
    )
    assert refused.status_code == 403
    assert {g["name"] for g in groups.list_groups(world.db, SYSTEM)} >= {name}

    root = browser(world, "super")
    shown = root.get("/groups").text
    assert f'action="/groups/{name}/edit"' in shown
    bad = root.post(f"/groups/{name}/edit", data={"csrf": csrf_of(root), "name": "no spaces!"})
    assert bad.status_code == 422 and 'value="no spaces!"' in bad.text  # kept, said at the form
    new = f"{name}-renamed"
    done = root.post(
        f"/groups/{name}/edit",
        data={
            "csrf": csrf_of(root),
            "name": new,
            "display_name": "值班组",
            "description": "on call",
        },
    )
    assert done.status_code in (200, 303), done.text[:300]
    after = groups.get_group(world.db, SYSTEM, new)
    assert (after["display_name"], after["description"]) == ("值班组", "on call")
    assert after["members"] == [world.actors["author"].username]
    assert space_roles(world)[new] == "developer"
