"""Authorization in one place: every service calls ``require`` with an action of the permissions
table (``ferryman.domain.permissions``) and the space or project it acts on.

A space the actor does not belong to is invisible: asking for anything in it is ``NotFound``,
exactly as if it did not exist, so ids from other spaces reveal nothing.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ferryman.db.models import Project, ProjectMember, Space, SpaceMember
from ferryman.domain.permissions import SUPER, Role, rule
from ferryman.errors import InsufficientScope, InternalError, NotFound, PermissionDenied
from ferryman.said import said
from ferryman.services import group_roles
from ferryman.services.audit import Actor


def space_role(s: Session, actor: Actor, space_id: int) -> Role | None:
    """The member's role in the space: the highest of their own and their groups'."""
    if actor.id is None:
        return None
    return group_roles.user_role(s, actor.id, space_id)


def project_role(s: Session, actor: Actor, project: Project) -> Role | None:
    """The member's role for one project: its override when set, else the space role."""
    base = space_role(s, actor, project.space_id)
    if base is None or actor.id is None:
        return None
    override = s.scalar(
        select(ProjectMember.role).where(
            ProjectMember.project_id == project.id, ProjectMember.user_id == actor.id
        )
    )
    return Role[override] if override else base


def visible_space_ids(s: Session, actor: Actor) -> list[int] | None:
    """The spaces the actor can see; ``None`` means all of them (superusers)."""
    if actor.is_superuser:
        return None
    if actor.id is None:
        return []
    direct = s.scalars(
        select(SpaceMember.space_id)
        .join(Space, Space.id == SpaceMember.space_id)
        .where(SpaceMember.user_id == actor.id, Space.is_active.is_(True))
    )
    return sorted(set(direct) | group_roles.spaces(s, actor.id))


def hidden(what: str = "") -> NotFound:
    """The refusal of an object the actor may not see — and, word for word, of one that does
    not exist (``what``: ``"server #7"``), so nobody can tell another space's ids from ids
    nobody has. A lookup raises this for a missing row, and ``require`` for a hidden one."""
    return NotFound(said("no %(what)s", what=what) if what else said("not found"))


def require(
    s: Session,
    actor: Actor,
    action: str,
    *,
    space_id: int | None = None,
    project: Project | None = None,
    what: str = "",
) -> None:
    """Allow ``action`` or raise ``NotFound`` (invisible), ``PermissionDenied`` or
    ``InsufficientScope``. ``what`` names the object for the not-found message."""
    spec = rule(action)
    if spec.writes and "write" not in actor.scopes:
        raise InsufficientScope(
            said("this token is read-only; %(action)s needs the 'write' scope", action=action)
        )
    needs = spec.space_role
    if needs is None:  # public, user or super
        if spec.needs == SUPER and not actor.is_superuser:
            raise PermissionDenied(
                said(
                    "only superusers may %(what)s (%(action)s)",
                    what=spec.description,
                    action=action,
                )
            )
        return
    if actor.is_superuser:
        return
    if project is not None:
        role = project_role(s, actor, project)
        space_id = project.space_id
    elif space_id is not None:
        role = space_role(s, actor, space_id)
    else:
        raise InternalError(f"{action} is checked in a space or a project: neither was given")
    if role is None:
        raise hidden(what)
    if role < needs:
        space = s.get(Space, space_id)
        raise PermissionDenied(
            said(
                "%(action)s needs the %(needs)s role or above in space %(space)s; you are %(role)s",
                action=action,
                needs=needs.name,
                space=repr(space.name) if space else "?",
                role=role.name,
            ),
            action=action,
            needs=needs.name,
            role=role.name,
        )
