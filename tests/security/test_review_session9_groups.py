"""Review of session 9's user-group work, as a space's owner reading their own audit log.

A group can be in several spaces; deleting it writes one audit row in each. A space's
owners and masters read their space's rows (``audit.read``), and "a space a user is not in
does not exist for them": a row in their log must not name the other spaces the group was in.

No fleet: the audit rows read through ``audit_views`` are the state asserted on."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from ferryman.db.models import AuditEntry, Space, SpaceGroup, SpaceMember, UserGroupMember
from ferryman.errors import Conflict
from ferryman.services import audit_views, groups, spaces, users
from ferryman.services.audit import SYSTEM
from tests.api.world import PASSWORD, SPACE, World, build_world, fresh


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield build_world(tmp_path_factory.mktemp("review9-groups"))


def test_deleting_a_group_names_no_other_space_in_a_spaces_audit_log(world: World) -> None:
    w = world
    hidden = fresh("hidden-space")  # a space the owner of SPACE is not in
    spaces.create_space(w.db, SYSTEM, hidden)
    spaces.set_member(
        w.db, SYSTEM, hidden, users.create_user(w.db, fresh("o"), PASSWORD).username, "owner"
    )
    group = groups.create_group(w.db, SYSTEM, fresh("shared"))["name"]
    groups.set_space_group(w.db, SYSTEM, SPACE, group, "reporter")
    groups.set_space_group(w.db, SYSTEM, hidden, group, "developer")

    groups.delete_group(w.db, SYSTEM, group)

    owner = w.actors["owner"]  # an owner of SPACE only
    rows = [
        r
        for r in audit_views.read_audit(w.db, owner, space=SPACE, limit=500)
        if r["action"] == "group.delete" and r["target"] == f"group:{group}"
    ]
    assert len(rows) == 1  # the owner reads that the group left their space
    assert hidden not in json.dumps(rows[0]["detail"])
    # and the stored row of SPACE holds nothing of the hidden space either
    with w.db.read() as s:
        space_id = s.scalar(select(Space.id).where(Space.name == SPACE))
        stored = s.scalars(
            select(AuditEntry).where(
                AuditEntry.target == f"group:{group}", AuditEntry.space_id == space_id
            )
        ).all()
    assert [hidden in json.dumps(e.detail) for e in stored] == [False]


def _owner_rows(w: World, space: str) -> tuple[int, int]:
    """The space's owners as stored: direct owner rows, and members of owner groups."""
    with w.db.read() as s:
        space_id = s.scalar(select(Space.id).where(Space.name == space))
        direct = s.scalar(
            select(func.count()).where(
                SpaceMember.space_id == space_id, SpaceMember.role == "owner"
            )
        )
        grouped = s.scalar(
            select(func.count())
            .select_from(UserGroupMember)
            .join(SpaceGroup, SpaceGroup.group_id == UserGroupMember.group_id)
            .where(SpaceGroup.space_id == space_id, SpaceGroup.role == "owner")
        )
    return (direct or 0, grouped or 0)


@pytest.mark.parametrize("change", ["delete the group", "take the member out"])
def test_a_disabled_space_keeps_its_only_owners_through_a_group_change(
    world: World, change: str
) -> None:
    """A superuser disables a space for a while; a group change in between must not leave
    it without owners when it is enabled again — as removing its last direct owner is
    refused whether the space is enabled or not."""
    w = world
    space = fresh("paused-space")
    spaces.create_space(w.db, SYSTEM, space)
    boss = users.create_user(w.db, fresh("boss"), PASSWORD)
    group = groups.create_group(w.db, SYSTEM, fresh("owners"))["name"]
    groups.add_member(w.db, SYSTEM, group, boss.username)
    groups.set_space_group(w.db, SYSTEM, space, group, "owner")
    spaces.update_space(w.db, SYSTEM, space, is_active=False)
    assert _owner_rows(w, space) == (0, 1)

    with pytest.raises(Conflict):
        if change == "delete the group":
            groups.delete_group(w.db, SYSTEM, group)
        else:
            groups.remove_member(w.db, SYSTEM, group, boss.username)

    spaces.update_space(w.db, SYSTEM, space, is_active=True)
    assert _owner_rows(w, space) == (0, 1)  # enabled again, still owned
    assert {m["username"]: m["role"] for m in spaces.list_members(w.db, SYSTEM, space)} == {
        boss.username: "owner"
    }


def test_a_disabled_spaces_last_direct_owner_is_kept_as_before(world: World) -> None:
    """The reference: the direct path refuses the same change on a disabled space."""
    w = world
    space = fresh("paused-direct")
    spaces.create_space(w.db, SYSTEM, space)
    boss = users.create_user(w.db, fresh("boss"), PASSWORD)
    spaces.set_member(w.db, SYSTEM, space, boss.username, "owner")
    spaces.update_space(w.db, SYSTEM, space, is_active=False)
    with pytest.raises(Conflict):
        spaces.remove_member(w.db, SYSTEM, space, boss.username)
    assert _owner_rows(w, space) == (1, 0)
