"""Reading the audit log: a space's masters and owners read their space; superusers read all."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from ferryman.db.models import SpaceMember
from ferryman.db.session import Database
from ferryman.domain.permissions import Role, rule
from ferryman.services.audit import Actor, query
from ferryman.services.authz import require
from ferryman.services.spaces import visible_space


def read_audit(
    db: Database,
    actor: Actor,
    *,
    space: int | str | None = None,
    who: str | None = None,
    project: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    with db.read() as s:
        space_ids: list[int] | None
        if space is not None:
            space_ids = [visible_space(s, actor, space, "audit.read").id]
        elif actor.is_superuser:
            require(s, actor, "me.read")
            space_ids = None
        else:
            needs = rule("audit.read").needs
            assert isinstance(needs, Role)
            allowed = [r.name for r in Role if r >= needs]
            space_ids = list(
                s.scalars(
                    select(SpaceMember.space_id).where(
                        SpaceMember.user_id == actor.id, SpaceMember.role.in_(allowed)
                    )
                )
            )
        return query(
            s,
            space_ids=space_ids,
            actor=who,
            project=project,
            action=action,
            since=since,
            until=until,
            limit=limit,
            before_id=before_id,
        )
