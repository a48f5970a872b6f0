"""What user groups give their members (Walle 2's 用户组): a group added to a space with a
role gives that role there to each of its members. ``authz`` takes the highest of a user's own
role and their groups' roles; these are its queries (reads only, no authorization of their
own, so ``authz`` can use them)."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from ferryman.db.models import Space, SpaceGroup, UserGroupMember


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
