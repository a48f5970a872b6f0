"""User groups (Walle 2's 用户组): superusers make groups and choose their members
(``group.manage``); a space's owners add a group to their space with a role
(``member.manage``), and every member of the group holds that role there — or their own
role, when it is higher (``authz.space_role``). A member who leaves the group, or a group
removed from the space, takes the role away at once: nothing is copied into the space's
member list."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ferryman.db.models import (
    Space,
    SpaceGroup,
    SpaceMember,
    User,
    UserGroup,
    UserGroupMember,
)
from ferryman.db.session import Database
from ferryman.domain import display_name as display_names
from ferryman.domain import validate
from ferryman.domain.permissions import Role
from ferryman.errors import Conflict, NotFound, ValidationError
from ferryman.services import group_roles
from ferryman.services.audit import Actor, record
from ferryman.services.authz import require, visible_space_ids
from ferryman.services.spaces import find_user, visible_space

DESCRIPTION = 500  # characters of a group's description


def _group(s: Session, ref: int | str) -> UserGroup:
    text = str(ref)
    ident = validate.row_id(text)
    found = (
        (s.get(UserGroup, ident) if ident else None)
        if ident is not None
        else s.scalar(select(UserGroup).where(UserGroup.name == text))
    )
    if found is None:
        raise NotFound(f"no group {text!r}")
    return found


def _seen(s: Session, actor: Actor) -> set[int] | None:
    """The users ``actor`` may see named, as ``users.list_users`` shows them: everyone for a
    superuser (None); else themselves and whoever holds a role in a space they see."""
    if actor.is_superuser:
        return None
    seen = {actor.id} if actor.id is not None else set()
    for space_id in visible_space_ids(s, actor) or []:
        seen |= set(group_roles.space_roles(s, space_id))
    return seen


def _members(s: Session, group: UserGroup, seen: set[int] | None = None) -> list[str]:
    """The group's members — only those in ``seen`` unless it is None: a group's list names
    no one the user list would hide."""
    stmt = (
        select(User.username)
        .join(UserGroupMember, UserGroupMember.user_id == User.id)
        .where(UserGroupMember.group_id == group.id)
        .order_by(User.username)
    )
    if seen is not None:
        stmt = stmt.where(User.id.in_(seen))
    return list(s.scalars(stmt))


def _spaces(s: Session, actor: Actor, group: UserGroup) -> list[dict[str, str]]:
    """The spaces the group is in, with its role — those the actor sees."""
    stmt = (
        select(Space.name, SpaceGroup.role)
        .join(SpaceGroup, SpaceGroup.space_id == Space.id)
        .where(SpaceGroup.group_id == group.id)
        .order_by(Space.name)
    )
    ids = visible_space_ids(s, actor)
    if ids is not None:
        stmt = stmt.where(Space.id.in_(ids))
    return [{"space": name, "role": role} for name, role in s.execute(stmt)]


def group_dict(
    s: Session, actor: Actor, group: UserGroup, seen: set[int] | None = None
) -> dict[str, Any]:
    """The group as ``actor`` sees it; ``seen``: ``_seen(s, actor)`` when already known."""
    return {
        "id": group.id,
        "name": group.name,
        "display_name": group.display_name,
        "description": group.description,
        "members": _members(s, group, _seen(s, actor) if seen is None else seen),
        "spaces": _spaces(s, actor, group),
        "created_at": group.created_at.isoformat(),
    }


def list_groups(db: Database, actor: Actor) -> list[dict[str, Any]]:
    with db.read() as s:
        require(s, actor, "group.read")
        seen = _seen(s, actor)
        groups = s.scalars(select(UserGroup).order_by(UserGroup.name))
        return [group_dict(s, actor, g, seen) for g in groups]


def get_group(db: Database, actor: Actor, ref: int | str) -> dict[str, Any]:
    with db.read() as s:
        require(s, actor, "group.read")
        return group_dict(s, actor, _group(s, ref))


def create_group(
    db: Database, actor: Actor, name: str, display_name: str = "", description: str = ""
) -> dict[str, Any]:
    validate.name(name, "group name")
    shown = display_names.check(display_name)
    with db.transaction() as s:
        require(s, actor, "group.manage")
        if s.scalar(select(UserGroup).where(UserGroup.name == name)) is not None:
            raise Conflict(f"group {name!r} already exists")
        group = UserGroup(name=name, display_name=shown, description=description)
        s.add(group)
        s.flush()
        record(s, actor, "group.create", f"group:{name}")
        return group_dict(s, actor, group)


def update_group(
    db: Database,
    actor: Actor,
    ref: int | str,
    *,
    name: str | None = None,
    display_name: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """Rename a group, or change its display name or description (``None``: unchanged).
    Members and the spaces it is in follow it: they are kept by the group's id."""
    if name is not None:
        validate.name(name, "group name")
    shown = display_names.check(display_name) if display_name is not None else None
    if description is not None and len(description.strip()) > DESCRIPTION:
        raise ValidationError(f"description: at most {DESCRIPTION} characters")
    with db.transaction() as s:
        require(s, actor, "group.manage")
        group = _group(s, ref)
        before = group.name
        changed: list[str] = []
        if name is not None and name != group.name:
            if s.scalar(select(UserGroup).where(UserGroup.name == name)) is not None:
                raise Conflict(f"group {name!r} already exists")
            group.name = name
            changed.append("name")
        if shown is not None and shown != group.display_name:
            group.display_name = shown
            changed.append("display_name")
        if description is not None and description.strip() != group.description:
            group.description = description.strip()
            changed.append("description")
        if changed:
            s.flush()
            record(s, actor, "group.update", f"group:{group.name}", was=before, changed=changed)
        return group_dict(s, actor, group)


def delete_group(db: Database, actor: Actor, ref: int | str) -> None:
    """Delete a group: its members lose what it gave them in every space. Refused when it
    would leave a space that has owners without one."""
    with db.transaction() as s:
        require(s, actor, "group.manage")
        group = _group(s, ref)
        touched = _space_rows(s, group)
        owned = _owned(s, touched)
        s.execute(delete(UserGroupMember).where(UserGroupMember.group_id == group.id))
        s.execute(delete(SpaceGroup).where(SpaceGroup.group_id == group.id))
        _keep_owners(s, owned, group)
        s.delete(group)
        _record_in_spaces(
            s,
            actor,
            "group.delete",
            f"group:{group.name}",
            touched,
        )


def add_member(db: Database, actor: Actor, ref: int | str, user_ref: int | str) -> dict[str, Any]:
    with db.transaction() as s:
        require(s, actor, "group.manage")
        group = _group(s, ref)
        user = find_user(s, user_ref)
        if s.get(UserGroupMember, (group.id, user.id)) is None:
            s.add(UserGroupMember(group_id=group.id, user_id=user.id))
            _record_in_spaces(
                s,
                actor,
                "group.member_add",
                f"group:{group.name}/user:{user.username}",
                _space_rows(s, group),
            )
        s.flush()
        return group_dict(s, actor, group)


def remove_member(db: Database, actor: Actor, ref: int | str, user_ref: int | str) -> None:
    """Take a user out of a group. Refused when it would leave a space that has owners
    without one (the user was the last owner there through this group)."""
    with db.transaction() as s:
        require(s, actor, "group.manage")
        group = _group(s, ref)
        user = find_user(s, user_ref)
        member = s.get(UserGroupMember, (group.id, user.id))
        if member is None:
            raise NotFound(f"{user.username} is not in group {group.name}")
        touched = _space_rows(s, group)
        owned = _owned(s, touched)
        s.delete(member)
        _keep_owners(s, owned, group)
        _record_in_spaces(
            s,
            actor,
            "group.member_remove",
            f"group:{group.name}/user:{user.username}",
            touched,
        )


def _space_rows(s: Session, group: UserGroup) -> list[tuple[Space, str]]:
    """Every space the group has a role in, with the role — whoever the actor is."""
    return [
        (space, role)
        for space, role in s.execute(
            select(Space, SpaceGroup.role)
            .join(SpaceGroup, SpaceGroup.space_id == Space.id)
            .where(SpaceGroup.group_id == group.id)
            .order_by(Space.name)
        )
    ]


def _owned(s: Session, touched: list[tuple[Space, str]]) -> list[Space]:
    """The spaces among ``touched`` where the group gives the owner role and someone owns
    the space now: those a change to the group must not leave without an owner."""
    return [space for space, role in touched if role == Role.owner.name and _has_owner(s, space)]


def _keep_owners(s: Session, owned: list[Space], group: UserGroup) -> None:
    for space in owned:
        _keep_an_owner(s, space, group)


def _record_in_spaces(
    s: Session,
    actor: Actor,
    action: str,
    target: str,
    touched: list[tuple[Space, str]],
    **detail: Any,
) -> None:
    """One audit row per space the group has a role in, so each space's owners read in their
    own log who gained or lost a role there through the group; one row without a space when
    it is in none (superusers read those). A space's row names no other space: its readers
    may not know those exist (superusers read every space's row)."""
    if not touched:
        record(s, actor, action, target, **detail)
    for space, role in touched:
        record(s, actor, action, target, space_id=space.id, role=role, **detail)


def list_space_groups(db: Database, actor: Actor, space_ref: int | str) -> list[dict[str, Any]]:
    with db.read() as s:
        space = visible_space(s, actor, space_ref, "member.read")
        rows = s.execute(
            select(UserGroup, SpaceGroup.role)
            .join(SpaceGroup, SpaceGroup.group_id == UserGroup.id)
            .where(SpaceGroup.space_id == space.id)
            .order_by(UserGroup.name)
        ).all()
        return [
            {
                "group": g.name,
                "display_name": g.display_name,
                "role": role,
                "members": _members(s, g),
            }
            for g, role in rows
        ]


def set_space_group(
    db: Database, actor: Actor, space_ref: int | str, ref: int | str, role: str
) -> dict[str, Any]:
    """Add the group to the space with ``role``, or change its role there."""
    parsed = Role.parse(role)
    with db.transaction() as s:
        space = visible_space(s, actor, space_ref, "member.manage")
        group = _group(s, ref)
        row = s.get(SpaceGroup, (space.id, group.id))
        before = row.role if row else None
        owned = _has_owner(s, space)
        if row is None:
            s.add(SpaceGroup(space_id=space.id, group_id=group.id, role=parsed.name))
        else:
            row.role = parsed.name
        if owned and before == Role.owner.name and parsed is not Role.owner:
            _keep_an_owner(s, space, group)
        record(
            s,
            actor,
            "space.group_set",
            f"space:{space.name}/group:{group.name}",
            space_id=space.id,
            before=before,
            after=parsed.name,
        )
        s.flush()
        return {
            "group": group.name,
            "display_name": group.display_name,
            "role": parsed.name,
            "members": _members(s, group),
        }


def remove_space_group(db: Database, actor: Actor, space_ref: int | str, ref: int | str) -> None:
    with db.transaction() as s:
        space = visible_space(s, actor, space_ref, "member.manage")
        group = _group(s, ref)
        row = s.get(SpaceGroup, (space.id, group.id))
        if row is None:
            raise NotFound(f"group {group.name} is not in {space.name}")
        owned = _has_owner(s, space)
        s.delete(row)
        if owned and row.role == Role.owner.name:
            _keep_an_owner(s, space, group)
        record(
            s,
            actor,
            "space.group_remove",
            f"space:{space.name}/group:{group.name}",
            space_id=space.id,
            before=row.role,
        )


def _has_owner(s: Session, space: Space) -> bool:
    """Whether anyone owns the space, directly or through a group — enabled or not: a
    disabled space holds its owners for when it is enabled again (``group_roles`` counts
    nobody in it), as ``spaces`` keeps a disabled space's last direct owner."""
    s.flush()
    direct = select(SpaceMember.user_id).where(
        SpaceMember.space_id == space.id, SpaceMember.role == Role.owner.name
    )
    grouped = (
        select(UserGroupMember.user_id)
        .join(SpaceGroup, SpaceGroup.group_id == UserGroupMember.group_id)
        .where(SpaceGroup.space_id == space.id, SpaceGroup.role == Role.owner.name)
    )
    return any(s.scalar(stmt.limit(1)) is not None for stmt in (direct, grouped))


def _keep_an_owner(s: Session, space: Space, group: UserGroup) -> None:
    """Refuse a change (made in ``s``, not committed) that leaves a space that had an owner
    without one — as ``spaces`` refuses removing or demoting its last owner."""
    if not _has_owner(s, space):
        raise Conflict(
            f"group {group.name} gives {space.name} its last owners; add another owner first"
        )
