"""User groups change who holds a role in spaces the group's manager may not even see. Three
things a space's owners rely on hold through them:

- a change to a group (deleting it, taking a member out) never leaves a space that had an
  owner without one — as removing or demoting a space's last direct owner is refused;
- each space's own audit log says who gained or lost a role there through a group;
- the space's member list names everyone holding a role there, through a group too, with
  their own role and the groups that give them one.

No fleet: the rows (group members, space groups, audit entries) are the state asserted on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from ferryman.db.models import AuditEntry, SpaceGroup, UserGroup, UserGroupMember
from ferryman.errors import Conflict
from ferryman.services import audit_views, groups, spaces, users
from ferryman.services.audit import SYSTEM, Actor
from tests.api.world import PASSWORD, SPACE, World, build_world, fresh


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield build_world(tmp_path_factory.mktemp("group-owners"))


def _user(w: World, prefix: str) -> Actor:
    return users.create_user(w.db, fresh(prefix), PASSWORD)


def _ownerless_space(w: World) -> str:
    """A space whose only owners come through a group of one member; returns the space."""
    name = fresh("ops-space")
    spaces.create_space(w.db, SYSTEM, name)
    return name


def _counts(w: World, group: str) -> tuple[int, int, int]:
    with w.db.read() as s:
        found = s.scalar(select(UserGroup).where(UserGroup.name == group))
        if found is None:
            return (0, 0, 0)
        members = s.scalar(select(func.count()).where(UserGroupMember.group_id == found.id))
        in_spaces = s.scalar(select(func.count()).where(SpaceGroup.group_id == found.id))
        return (1, members or 0, in_spaces or 0)


def test_taking_a_spaces_last_owner_out_of_the_group_that_made_them_owner_is_refused(world):
    w = world
    space = _ownerless_space(w)
    boss = _user(w, "boss")
    group = groups.create_group(w.db, SYSTEM, fresh("owners"))["name"]
    groups.add_member(w.db, SYSTEM, group, boss.username)
    groups.set_space_group(w.db, SYSTEM, space, group, "owner")

    with pytest.raises(Conflict, match="last owners"):
        groups.remove_member(w.db, SYSTEM, group, boss.username)
    assert _counts(w, group) == (1, 1, 1)  # nothing was taken away
    assert [m["role"] for m in spaces.list_members(w.db, SYSTEM, space)] == ["owner"]

    # with another owner first, the same change goes through
    deputy = _user(w, "deputy")
    spaces.set_member(w.db, SYSTEM, space, deputy.username, "owner")
    groups.remove_member(w.db, SYSTEM, group, boss.username)
    assert _counts(w, group) == (1, 0, 1)


def test_deleting_the_group_that_gives_a_space_its_only_owners_is_refused(world):
    w = world
    space = _ownerless_space(w)
    boss = _user(w, "boss")
    group = groups.create_group(w.db, SYSTEM, fresh("owners"))["name"]
    groups.add_member(w.db, SYSTEM, group, boss.username)
    groups.set_space_group(w.db, SYSTEM, space, group, "owner")

    with pytest.raises(Conflict, match=space):
        groups.delete_group(w.db, SYSTEM, group)
    assert _counts(w, group) == (1, 1, 1)
    assert {m["username"]: m["role"] for m in spaces.list_members(w.db, SYSTEM, space)} == {
        boss.username: "owner"
    }


def test_a_group_that_owns_nothing_alone_is_deleted_and_a_space_without_owners_stays_so(world):
    w = world
    # a space that has a direct owner: the group's owner role is not its last
    owned = _ownerless_space(w)
    spaces.set_member(w.db, SYSTEM, owned, _user(w, "direct").username, "owner")
    # a space nobody owns (an operator's choice): deleting the group takes nothing it had
    bare = _ownerless_space(w)
    group = groups.create_group(w.db, SYSTEM, fresh("mixed"))["name"]
    groups.add_member(w.db, SYSTEM, group, _user(w, "m").username)
    groups.set_space_group(w.db, SYSTEM, owned, group, "owner")
    groups.set_space_group(w.db, SYSTEM, bare, group, "developer")

    groups.delete_group(w.db, SYSTEM, group)
    assert _counts(w, group) == (0, 0, 0)


def test_each_spaces_audit_log_tells_its_owners_who_gained_or_lost_a_role_there_through_a_group(
    world,
):
    w = world
    group = groups.create_group(w.db, SYSTEM, fresh("support"))["name"]
    groups.set_space_group(w.db, SYSTEM, SPACE, group, "developer")
    newcomer = _user(w, "newcomer")
    groups.add_member(w.db, SYSTEM, group, newcomer.username)
    groups.remove_member(w.db, SYSTEM, group, newcomer.username)
    target = f"group:{group}/user:{newcomer.username}"

    def seen(actor: Actor, space: str | None = None) -> list[tuple[str, str]]:
        rows = audit_views.read_audit(w.db, actor, space=space, limit=500)
        return [(r["action"], r["target"]) for r in rows if r["target"] == target]

    expected = [("group.member_remove", target), ("group.member_add", target)]
    owner = w.actors["owner"]  # an owner of SPACE
    assert seen(owner) == expected
    assert seen(owner, SPACE) == expected
    # the other space's owner: the group has no role there, nothing to read
    assert seen(w.actors["other"]) == []
    # the rows say which role the group gives in that space
    with w.db.read() as s:
        details = [
            e.detail for e in s.scalars(select(AuditEntry).where(AuditEntry.target == target))
        ]
    assert [d.get("role") for d in details] == ["developer", "developer"]


def test_a_group_member_change_in_no_space_is_logged_once_for_superusers(world):
    w = world
    group = groups.create_group(w.db, SYSTEM, fresh("idle"))["name"]
    who = _user(w, "idle")
    groups.add_member(w.db, SYSTEM, group, who.username)
    target = f"group:{group}/user:{who.username}"
    with w.db.read() as s:
        rows = list(s.scalars(select(AuditEntry).where(AuditEntry.target == target)))
    assert [(r.action, r.space_id) for r in rows] == [("group.member_add", None)]
    assert [r["target"] for r in audit_views.read_audit(w.db, w.actors["owner"])].count(target) == 0


def test_the_member_list_names_who_holds_a_role_through_a_group_and_their_own_role(world):
    w = world
    space = _ownerless_space(w)
    direct = _user(w, "direct")
    both = _user(w, "both")
    only = _user(w, "only")
    spaces.set_member(w.db, SYSTEM, space, direct.username, "owner")
    spaces.set_member(w.db, SYSTEM, space, both.username, "developer")
    ops = groups.create_group(w.db, SYSTEM, fresh("ops"))["name"]
    qa = groups.create_group(w.db, SYSTEM, fresh("qa"))["name"]
    for member in (both, only):
        groups.add_member(w.db, SYSTEM, ops, member.username)
    groups.add_member(w.db, SYSTEM, qa, only.username)
    groups.set_space_group(w.db, SYSTEM, space, ops, "master")
    groups.set_space_group(w.db, SYSTEM, space, qa, "reporter")

    listed = {m["username"]: m for m in spaces.list_members(w.db, SYSTEM, space)}
    assert set(listed) == {direct.username, both.username, only.username}
    assert (listed[direct.username]["role"], listed[direct.username]["own_role"]) == (
        "owner",
        "owner",
    )
    assert listed[direct.username]["groups"] == []
    # their own role is developer; the group makes them a master there
    assert (listed[both.username]["role"], listed[both.username]["own_role"]) == (
        "master",
        "developer",
    )
    assert listed[both.username]["groups"] == [{"group": ops, "role": "master"}]
    # no membership of their own: the highest of their groups' roles
    assert (listed[only.username]["role"], listed[only.username]["own_role"]) == (
        "master",
        None,
    )
    assert sorted(g["group"] for g in listed[only.username]["groups"]) == sorted([ops, qa])

    # out of the group, out of the list: nothing was copied into the space
    groups.remove_member(w.db, SYSTEM, qa, only.username)
    groups.remove_member(w.db, SYSTEM, ops, only.username)
    assert only.username not in {m["username"] for m in spaces.list_members(w.db, SYSTEM, space)}
