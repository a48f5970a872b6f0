"""Review (session 8): user groups and what they let a user of one space learn or do
elsewhere.

- The user list (``user.list``) shows a non-superuser only the users who share a space with
  them — as members or through a group. The group list (``group.read``, any signed-in user)
  showed every group's members, so anyone, even a user of no space at all, read the names of
  users of every other space through the groups they are in. A group's members are now shown
  as far as the user list would show them.
- An owner of one space cannot give a group a role in another space, nor manage a group's
  members; a developer given a role through a group cannot lift the group's role.

No fleet: the rows written (members, space groups) and what each listing returns are the
state asserted on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from ferryman.db.models import SpaceGroup, SpaceMember, UserGroup, UserGroupMember
from ferryman.errors import Conflict, NotFound, PermissionDenied
from ferryman.services import groups, spaces, users
from ferryman.services.audit import SYSTEM, Actor
from tests.api.world import PASSWORD, SPACE, World, build_world, fresh


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield build_world(tmp_path_factory.mktemp("review8-groups"))


def _user(w: World, prefix: str) -> Actor:
    return users.create_user(w.db, fresh(prefix), PASSWORD)


def _names(w: World, actor: Actor) -> set[str]:
    return {row["username"] for row in users.list_users(w.db, actor)}


def test_the_group_list_shows_no_member_the_user_list_hides(world):
    w = world
    # a group of the other space, with a user who is only there
    secret = _user(w, "hidden-admin")
    group = groups.create_group(w.db, SYSTEM, fresh("dba"))["name"]
    groups.add_member(w.db, SYSTEM, group, secret.username)
    groups.set_space_group(w.db, SYSTEM, "other", group, "master")
    loner = _user(w, "loner")  # in no space at all
    for who in (w.actors["reporter"], w.actors["owner"], loner):
        assert secret.username not in _names(w, who)  # the user list hides them
        for row in groups.list_groups(w.db, who):
            assert secret.username not in row["members"], (who.username, row)
        assert secret.username not in groups.get_group(w.db, who, group)["members"]
    # the other space's owner shares the space with them: both lists show them
    theirs = w.actors["other"]
    assert secret.username in _names(w, theirs)
    assert secret.username in groups.get_group(w.db, theirs, group)["members"]
    # and a superuser sees everyone
    assert groups.get_group(w.db, SYSTEM, group)["members"] == [secret.username]


def test_a_group_of_your_own_space_still_shows_all_its_members(world):
    w = world
    one, two = _user(w, "web1"), _user(w, "web2")
    group = groups.create_group(w.db, SYSTEM, fresh("web"))["name"]
    for who in (one, two):
        groups.add_member(w.db, SYSTEM, group, who.username)
    groups.set_space_group(w.db, SYSTEM, SPACE, group, "reporter")
    reporter = w.actors["reporter"]
    assert groups.get_group(w.db, reporter, group)["members"] == sorted(
        [one.username, two.username]
    )
    listed = {g["group"]: g for g in groups.list_space_groups(w.db, reporter, SPACE)}
    assert listed[group]["members"] == sorted([one.username, two.username])


def test_an_owner_cannot_reach_another_spaces_groups_or_a_groups_members(world):
    w = world
    group = groups.create_group(w.db, SYSTEM, fresh("ops"))["name"]
    groups.set_space_group(w.db, SYSTEM, "other", group, "reporter")
    owner = w.actors["owner"]
    with pytest.raises(NotFound):
        groups.set_space_group(w.db, owner, "other", group, "owner")
    with pytest.raises(NotFound):
        groups.remove_space_group(w.db, owner, "other", group)
    with pytest.raises(PermissionDenied):
        groups.add_member(w.db, owner, group, owner.username)
    with w.db.read() as s:
        held = s.scalars(
            select(SpaceGroup.role)
            .join(UserGroup, UserGroup.id == SpaceGroup.group_id)
            .where(UserGroup.name == group)
        ).all()
        joined = s.scalar(select(UserGroupMember).where(UserGroupMember.user_id == owner.id))
    assert held == ["reporter"] and joined is None
    assert {g["space"]: g["role"] for g in groups.get_group(w.db, SYSTEM, group)["spaces"]} == {
        "other": "reporter"
    }


def test_a_developer_through_a_group_cannot_raise_the_groups_role(world):
    w = world
    dev = _user(w, "dev")
    group = groups.create_group(w.db, SYSTEM, fresh("devs"))["name"]
    groups.add_member(w.db, SYSTEM, group, dev.username)
    groups.set_space_group(w.db, SYSTEM, SPACE, group, "developer")
    with pytest.raises(PermissionDenied):
        groups.set_space_group(w.db, dev, SPACE, group, "owner")
    with pytest.raises(PermissionDenied):
        spaces.set_member(w.db, dev, SPACE, dev.username, "owner")
    assert groups.get_group(w.db, SYSTEM, group)["spaces"] == [
        {"space": SPACE, "role": "developer"}
    ]
    with w.db.read() as s:
        own = s.scalar(select(SpaceMember.role).where(SpaceMember.user_id == dev.id))
    assert own is None  # no member row written for them either


def test_the_last_owners_group_cannot_be_removed_or_lowered(world):
    """A space keeps an owner (``spaces._keep_an_owner``: its last owner cannot be removed or
    demoted). A space whose owners hold the role through a group lost them all when one of
    them removed the group, or lowered its role: nobody but a superuser could manage it."""
    w = world
    space = fresh("solo")
    spaces.create_space(w.db, SYSTEM, space)  # no direct member at all
    lead = _user(w, "lead")
    admins = groups.create_group(w.db, SYSTEM, fresh("admins"))["name"]
    groups.add_member(w.db, SYSTEM, admins, lead.username)
    groups.set_space_group(w.db, SYSTEM, space, admins, "owner")
    with pytest.raises(Conflict):
        groups.set_space_group(w.db, lead, space, admins, "master")
    with pytest.raises(Conflict):
        groups.remove_space_group(w.db, lead, space, admins)
    with w.db.read() as s:
        held = s.scalars(
            select(SpaceGroup.role)
            .join(UserGroup, UserGroup.id == SpaceGroup.group_id)
            .where(UserGroup.name == admins)
        ).all()
    assert held == ["owner"]
    # another owner first (directly here): then the group may go
    second = _user(w, "second")
    spaces.set_member(w.db, lead, space, second.username, "owner")
    groups.remove_space_group(w.db, lead, space, admins)
    with w.db.read() as s:
        assert (
            s.scalar(
                select(SpaceGroup.role)
                .join(UserGroup, UserGroup.id == SpaceGroup.group_id)
                .where(UserGroup.name == admins)
            )
            is None
        )
