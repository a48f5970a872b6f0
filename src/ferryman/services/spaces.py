"""Spaces (tenants) and their members."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ferryman.db.models import (
    Environment,
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
from ferryman.domain.rollout import duration
from ferryman.domain.validate import row_id
from ferryman.errors import Conflict, NotFound, PermissionDenied, ValidationError
from ferryman.said import said
from ferryman.services import group_roles
from ferryman.services.audit import Actor, record
from ferryman.services.authz import require, visible_space_ids

# Every new space starts with these environments; production needs approval.
SEEDED_ENVIRONMENTS = (
    ("dev", "development"),
    ("test", "testing"),
    ("staging", "pre-release (预发布)"),
    ("production", "production (生产)"),
)


def space_dict(space: Space) -> dict[str, Any]:
    return {
        "id": space.id,
        "name": space.name,
        "display_name": space.display_name,
        "description": space.description,
        "is_active": space.is_active,
        "created_at": space.created_at.isoformat(),
        **limits_dict(space),
    }


def limits_dict(space: Space) -> dict[str, Any]:
    return {
        "max_running": space.max_running,
        "max_task_timeout": space.max_task_timeout,
        "allow_local_repos": space.allow_local_repos,
    }


def load_space(s: Session, ref: int | str) -> Space:
    """A space by id or by name (visibility is checked by the caller's ``require``)."""
    if (ident := row_id(ref)) is not None:
        space = s.get(Space, ident) if ident else None
    else:
        space = s.scalar(select(Space).where(Space.name == ref))
    if space is None:
        raise NotFound(said("no space %(space)s", space=repr(ref)))
    return space


def visible_space(s: Session, actor: Actor, ref: int | str, action: str) -> Space:
    missing = NotFound(said("no space %(space)s", space=repr(ref)))
    try:
        space = load_space(s, ref)
    except NotFound:
        raise missing from None
    try:
        require(s, actor, action, space_id=space.id, what=f"space {ref!r}")
    except NotFound:  # a space one is not in: refused word for word (template too) as a missing one
        raise missing from None
    return space


def create_space(
    db: Database,
    actor: Actor,
    name: str,
    description: str = "",
    owner: str | None = None,
    *,
    display_name: str = "",
) -> dict[str, Any]:
    validate.name(name, "space name")
    shown = display_names.check(display_name)
    with db.transaction() as s:
        require(s, actor, "space.create")
        if s.scalar(select(Space).where(Space.name == name)) is not None:
            raise Conflict(said("space %(space)s already exists", space=repr(name)))
        space = Space(name=name, description=description, display_name=shown)
        s.add(space)
        s.flush()
        for env_name, env_description in SEEDED_ENVIRONMENTS:
            s.add(
                Environment(
                    space_id=space.id,
                    name=env_name,
                    description=env_description,
                    variables={},
                    requires_approval=env_name == "production",
                )
            )
        if owner:
            user = find_user(s, owner)
            s.add(SpaceMember(space_id=space.id, user_id=user.id, role=Role.owner.name))
        record(s, actor, "space.create", f"space:{name}", space_id=space.id, owner=owner)
        return space_dict(space)


def list_spaces(db: Database, actor: Actor) -> list[dict[str, Any]]:
    with db.read() as s:
        ids = visible_space_ids(s, actor)
        stmt = select(Space).order_by(Space.name)
        if ids is not None:
            stmt = stmt.where(Space.id.in_(ids))
        out = []
        for space in s.scalars(stmt):
            row = space_dict(space)
            if actor.id is not None:
                role = s.scalar(
                    select(SpaceMember.role).where(
                        SpaceMember.space_id == space.id, SpaceMember.user_id == actor.id
                    )
                )
                # the highest of their own and their groups' roles, as authz.space_role
                roles = [Role[r] for r in group_roles.roles_in_space(s, actor.id, space.id)]
                roles += [Role[role]] if role else []
                row["role"] = max(roles).name if roles else None
            out.append(row)
        return out


def get_space(db: Database, actor: Actor, ref: int | str) -> dict[str, Any]:
    with db.read() as s:
        return space_dict(visible_space(s, actor, ref, "space.read"))


def update_space(
    db: Database,
    actor: Actor,
    ref: int | str,
    *,
    description: str | None = None,
    is_active: bool | None = None,
    display_name: str | None = None,
) -> dict[str, Any]:
    shown = None if display_name is None else display_names.check(display_name)
    with db.transaction() as s:
        space = visible_space(s, actor, ref, "space.manage")
        before = space_dict(space)
        if shown is not None:
            space.display_name = shown
        if description is not None:
            space.description = description
        if is_active is not None:
            space.is_active = is_active
        after = space_dict(space)
        record(
            s,
            actor,
            "space.update",
            f"space:{space.name}",
            space_id=space.id,
            before={k: before[k] for k in ("display_name", "description", "is_active")},
            after={k: after[k] for k in ("display_name", "description", "is_active")},
        )
        return after


MAX_RUNNING_CEILING = 1000


def update_limits(
    db: Database,
    actor: Actor,
    ref: int | str,
    max_running: int | None = None,
    max_task_timeout: float | str | None = None,
    allow_local_repos: bool | None = None,
) -> dict[str, Any]:
    """Change a space's fair-worker limits and local-repository policy. An owner may lower
    ``max_running`` (deploys running at once, at least 1) and ``max_task_timeout`` (seconds,
    or ``"30m"``/``"1h"``); raising either, or changing ``allow_local_repos``, is a
    superuser's (``space.policy``). Values equal to the current ones change nothing."""
    if max_running is not None and (
        isinstance(max_running, bool) or not 1 <= max_running <= MAX_RUNNING_CEILING
    ):
        raise ValidationError(f"max_running: between 1 and {MAX_RUNNING_CEILING}")
    timeout = None
    if max_task_timeout is not None:
        timeout = duration(max_task_timeout, "max_task_timeout")
        if timeout <= 0:
            raise ValidationError("max_task_timeout: more than 0 seconds")
    with db.transaction() as s:
        space = visible_space(s, actor, ref, "space.limit")
        before = limits_dict(space)
        raising = []
        if max_running is not None and max_running > space.max_running:
            raising.append(f"raise max_running from {space.max_running} to {max_running}")
        if timeout is not None and timeout > space.max_task_timeout:
            raising.append(
                f"raise max_task_timeout from {space.max_task_timeout:g}s to {timeout:g}s"
            )
        if allow_local_repos is not None and allow_local_repos != space.allow_local_repos:
            raising.append(("allow" if allow_local_repos else "refuse") + " local repositories")
        if raising:
            try:
                require(s, actor, "space.policy", space_id=space.id)
            except PermissionDenied:
                raise PermissionDenied(
                    f"only a superuser may {' and '.join(raising)} in space {space.name!r} "
                    "(space.policy); owners may only lower limits",
                    action="space.policy",
                    needs="superuser",
                ) from None
        if max_running is not None:
            space.max_running = max_running
        if timeout is not None:
            space.max_task_timeout = timeout
        if allow_local_repos is not None:
            space.allow_local_repos = allow_local_repos
        after = limits_dict(space)
        record(
            s,
            actor,
            "space.limits",
            f"space:{space.name}",
            space_id=space.id,
            before=before,
            after=after,
        )
        return {"id": space.id, "name": space.name, **after}


def find_user(s: Session, ref: int | str) -> User:
    if (ident := row_id(ref)) is not None:
        user = s.get(User, ident) if ident else None
    else:
        user = s.scalar(select(User).where(User.username == ref))
    if user is None:
        raise NotFound(said("no user %(user)s", user=repr(ref)))
    return user


def list_members(db: Database, actor: Actor, ref: int | str) -> list[dict[str, Any]]:
    """Everyone holding a role in the space, directly or through a group. ``role`` is the role
    they hold (the highest of their own and their groups'); ``own_role`` their own membership
    (None for a member through groups only); ``groups`` the groups that give them one."""
    with db.read() as s:
        space = visible_space(s, actor, ref, "member.read")
        own: dict[int, str] = {
            user_id: role
            for user_id, role in s.execute(
                select(SpaceMember.user_id, SpaceMember.role).where(
                    SpaceMember.space_id == space.id
                )
            )
        }
        via: dict[int, list[dict[str, str]]] = {}
        for user_id, group, role in s.execute(
            select(UserGroupMember.user_id, UserGroup.name, SpaceGroup.role)
            .join(UserGroup, UserGroup.id == UserGroupMember.group_id)
            .join(SpaceGroup, SpaceGroup.group_id == UserGroupMember.group_id)
            .where(SpaceGroup.space_id == space.id)
            .order_by(UserGroup.name)
        ):
            via.setdefault(user_id, []).append({"group": group, "role": role})
        users = s.scalars(
            select(User).where(User.id.in_(set(own) | set(via))).order_by(User.username)
        )
        out = []
        for u in users:
            roles = [Role[g["role"]] for g in via.get(u.id, [])]
            if u.id in own:
                roles.append(Role[own[u.id]])
            out.append(
                {
                    "user_id": u.id,
                    "username": u.username,
                    "role": max(roles).name,
                    "own_role": own.get(u.id),
                    "groups": via.get(u.id, []),
                    "is_active": u.is_active,
                }
            )
        return out


def set_member(
    db: Database, actor: Actor, ref: int | str, user_ref: int | str, role: str
) -> dict[str, Any]:
    """Add a member or change their role."""
    parsed = Role.parse(role)
    with db.transaction() as s:
        space = visible_space(s, actor, ref, "member.manage")
        user = find_user(s, user_ref)
        member = s.get(SpaceMember, (space.id, user.id))
        before = member.role if member else None
        if before == Role.owner.name and parsed is not Role.owner:
            _keep_an_owner(s, space, user)
        if member is None:
            s.add(SpaceMember(space_id=space.id, user_id=user.id, role=parsed.name))
        else:
            member.role = parsed.name
        record(
            s,
            actor,
            "member.set",
            f"space:{space.name}/user:{user.username}",
            space_id=space.id,
            before=before,
            after=parsed.name,
        )
        return {"user_id": user.id, "username": user.username, "role": parsed.name}


def remove_member(db: Database, actor: Actor, ref: int | str, user_ref: int | str) -> None:
    with db.transaction() as s:
        space = visible_space(s, actor, ref, "member.manage")
        user = find_user(s, user_ref)
        member = s.get(SpaceMember, (space.id, user.id))
        if member is None:
            raise NotFound(
                said("%(user)s is not a member of %(space)s", user=user.username, space=space.name)
            )
        if member.role == Role.owner.name:
            _keep_an_owner(s, space, user)
        s.delete(member)
        record(
            s,
            actor,
            "member.remove",
            f"space:{space.name}/user:{user.username}",
            space_id=space.id,
            before=member.role,
        )


def _keep_an_owner(s: Session, space: Space, user: User) -> None:
    owners = s.scalars(
        select(SpaceMember.user_id).where(
            SpaceMember.space_id == space.id, SpaceMember.role == Role.owner.name
        )
    ).all()
    if list(owners) == [user.id]:
        raise Conflict(
            said(
                "%(user)s is the last owner of %(space)s; add another first",
                user=user.username,
                space=space.name,
            )
        )
