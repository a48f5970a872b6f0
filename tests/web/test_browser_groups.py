"""User groups in a real Chromium against a real ``ferryman serve``: a superuser makes a
group and adds a member on the groups page; the space's owner gives the group a role on the
members page and changes it; a developer sees the groups and no buttons, in Chinese; the
superuser removes the member and deletes the group. Screenshots of both pages in English and
Chinese go to the test's output (and ``$FERRYMAN_SCREENSHOTS``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ferryman.bootstrap import prepare_home
from ferryman.services import groups, spaces, users
from ferryman.services.audit import SYSTEM
from tests.helpers import running_server
from tests.web.test_browser import PASSWORD, Shots, chromium  # noqa: F401 - a fixture
from tests.web.test_browser_walle import browser_for


@pytest.fixture
def group_server(settings) -> Iterator[str]:
    db = prepare_home(settings)
    users.create_user(db, "root", PASSWORD, superuser=True)
    for name, role in (("olive", "owner"), ("dev", "developer")):
        users.create_user(db, name, PASSWORD)
        spaces.set_member(db, SYSTEM, "default", name, role)
    users.create_user(db, "newbie", PASSWORD)
    db.dispose()
    with running_server(settings.home) as url:
        yield url


def space_roles(settings) -> dict[str, str]:
    db = prepare_home(settings)
    try:
        return {g["group"]: g["role"] for g in groups.list_space_groups(db, SYSTEM, "default")}
    finally:
        db.dispose()


def test_a_group_is_made_given_a_role_and_removed_in_the_browser(
    group_server,
    chromium,  # noqa: F811
    settings,
    tmp_path,
):
    shots = Shots(tmp_path / "screenshots")
    root = browser_for(chromium, group_server, "root")
    root.goto("/groups")
    root.fill("#new-group input[name=name]", "bad name")
    root.fill("#new-group input[name=display_name]", "运维组")
    root.click("#new-group button[type=submit]")
    root.wait_for_load_state()
    assert "invalid group name" in root.inner_text("#new-group .error")
    assert root.input_value("#new-group input[name=display_name]") == "运维组"  # kept
    root.fill("#new-group input[name=name]", "ops")
    root.click("#new-group button[type=submit]")
    root.wait_for_selector("#group-ops")
    assert "ops" in root.inner_text(".flash")
    root.fill("#group-ops .add-member input[name=username]", "newbie")
    root.click("#group-ops .add-member button[type=submit]")
    root.wait_for_selector("#group-ops .member")
    assert "newbie" in root.inner_text("#group-ops .member")

    owner = browser_for(chromium, group_server, "olive")
    owner.goto("/s/default/members")
    owner.select_option("#add-group select[name=group]", "ops")
    owner.select_option("#add-group select[name=role]", "master")
    owner.click("#add-group button[type=submit]")
    owner.wait_for_selector("#space-groups tr[data-group=ops]")
    assert space_roles(settings) == {"ops": "master"}
    owner.select_option("#space-groups tr[data-group=ops] select[name=role]", "developer")
    owner.click("#space-groups tr[data-group=ops] button[type=submit]:not(.danger)")
    owner.wait_for_load_state()
    assert space_roles(settings) == {"ops": "developer"}
    shots.take(owner, "members-groups-en")
    owner.goto("/groups")
    assert owner.locator("#new-group").count() == 0  # superusers make groups
    assert owner.locator("#group-ops .delete-group").count() == 0

    dev = browser_for(chromium, group_server, "dev", locale="zh-CN")
    dev.goto("/groups")
    assert "用户组" in dev.inner_text("h1")
    assert "newbie" in dev.inner_text("#group-ops")
    assert dev.locator("#group-ops form").count() == 0 and dev.locator("#new-group").count() == 0
    dev.goto("/s/default/members")
    assert "开发者" in dev.inner_text("#space-groups tr[data-group=ops]")
    assert dev.locator("#space-groups form").count() == 0
    shots.take(dev, "members-groups-zh")
    dev.goto("/groups")
    shots.take(dev, "groups-zh")

    root.goto("/groups")
    shots.take(root, "groups-en")
    root.once("dialog", lambda dialog: dialog.accept())
    root.click("#group-ops .member button[type=submit]")
    root.wait_for_load_state()
    assert root.locator("#group-ops .member").count() == 0
    root.once("dialog", lambda dialog: dialog.accept())
    root.click("#group-ops .delete-group button[type=submit]")
    root.wait_for_load_state()
    assert root.locator("#group-ops").count() == 0
    assert space_roles(settings) == {}
