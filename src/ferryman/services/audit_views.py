"""Reading the audit log: a space's masters and owners read their space — as members or through
a group (``group_roles``) — and superusers read all."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ferryman.db.session import Database
from ferryman.domain.permissions import role_allows
from ferryman.services.audit import Actor, query
from ferryman.services.authz import require, space_role, visible_space_ids
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
            # the spaces where their role — their own or a group's — reads the audit log
            space_ids = [
                space_id
                for space_id in visible_space_ids(s, actor) or []
                if role_allows(space_role(s, actor, space_id), "audit.read")
            ]
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
