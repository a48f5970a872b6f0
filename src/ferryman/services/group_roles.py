"""What user groups give their members (Walle 2's 用户组): a group added to a space with a
role gives that role there to each of its members. A user's role in a space is the highest of
their own and their groups' roles; a per-project override replaces it for that project, for a
group member exactly as for a direct member, and only while they hold a role in the space.

These are the queries every place that asks "who holds which role" uses — ``authz`` for the
actor, and the audit log, notification recipients, the user list and project overrides for
everyone — so that no place counts direct members only. Reads only, no authorization of their
own, so ``authz`` can use them."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from ferryman.db.models import (
    Project,
    ProjectMember,
    Space,
    SpaceGroup,
    SpaceMember,
    UserGroupMember,
)
from ferryman.domain.permissions import Role


def _roles(user_id: int) -> Select[int, str]:
    return (
        select(SpaceGroup.space_id, SpaceGroup.role)
        .join(UserGroupMember, UserGroupMember.group_id == SpaceGroup.group_id)
        .join(Space, Space.id == SpaceGroup.space_id)
        .where(UserGroupMember.user_id == user_id, Space.is_active.is_(True))
    )


def roles_in_space(s: Session, user_id: int, space_id: int) -> list[str]:
    """The roles the user's groups hold in the (active) space."""
    return [
        role for _space, role in s.execute(_roles(user_id).where(SpaceGroup.space_id == space_id))
    ]


def spaces(s: Session, user_id: int) -> set[int]:
    """The active spaces one of the user's groups was added to."""
    return {space for space, _role in s.execute(_roles(user_id))}


def user_role(s: Session, user_id: int, space_id: int) -> Role | None:
    """The user's role in the (active) space: the highest of their own and their groups'."""
    own = s.scalar(
        select(SpaceMember.role)
        .join(Space, Space.id == SpaceMember.space_id)
        .where(
            SpaceMember.space_id == space_id,
            SpaceMember.user_id == user_id,
            Space.is_active.is_(True),
        )
    )
    roles = [Role[r] for r in roles_in_space(s, user_id, space_id)]
    if own:
        roles.append(Role[own])
    return max(roles, default=None)


def space_roles(s: Session, space_id: int) -> dict[int, Role]:
    """Every user holding a role in the (active) space, by user id: the highest of their own
    and their groups' roles. An inactive space has nobody."""
    if not s.scalar(select(Space.is_active).where(Space.id == space_id)):
        return {}
    out: dict[int, Role] = {}
    own = select(SpaceMember.user_id, SpaceMember.role).where(SpaceMember.space_id == space_id)
    grouped = (
        select(UserGroupMember.user_id, SpaceGroup.role)
        .join(SpaceGroup, SpaceGroup.group_id == UserGroupMember.group_id)
        .where(SpaceGroup.space_id == space_id)
    )
    for stmt in (own, grouped):
        for user_id, name in s.execute(stmt):
            role = Role[name]
            if user_id not in out or out[user_id] < role:
                out[user_id] = role
    return out


def project_roles(s: Session, project: Project) -> dict[int, Role]:
    """Every user holding a role for the project: their space role (``space_roles``), replaced
    by their project override where one is set. An override alone gives nothing: a user who
    left the space (or the group that put them there) is not counted."""
    roles = space_roles(s, project.space_id)
    overrides = select(ProjectMember.user_id, ProjectMember.role).where(
        ProjectMember.project_id == project.id
    )
    for user_id, name in s.execute(overrides):
        if user_id in roles:
            roles[user_id] = Role[name]
    return roles


def at_least(roles: dict[int, Role], needs: Role) -> set[int]:
    """The users of ``roles`` whose role is ``needs`` or above."""
    return {user_id for user_id, role in roles.items() if role >= needs}
