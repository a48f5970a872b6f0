"""The audit trail: who did what to which object, written in the same transaction as the act.

Append-only: nothing in Ferryman updates or deletes these rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ferryman.db.models import AuditEntry, Project
from ferryman.domain.validate import row_id

ALL_SCOPES = frozenset({"read", "write"})


@dataclass(frozen=True)
class Actor:
    """Who is acting: a user (through a token or session) or the system itself."""

    id: int | None
    username: str
    is_superuser: bool = False
    ip: str = ""
    scopes: frozenset[str] = field(default=ALL_SCOPES)

    def at(self, ip: str) -> Actor:
        return replace(self, ip=ip)


SYSTEM = Actor(id=None, username="system", is_superuser=True)


def record(
    session: Session,
    actor: Actor,
    action: str,
    target: str,
    *,
    space_id: int | None = None,
    project_id: int | None = None,
    **detail: Any,
) -> None:
    session.add(
        AuditEntry(
            actor=actor.username,
            action=action,
            target=target,
            space_id=space_id,
            project_id=project_id,
            ip=actor.ip[:64],
            detail=detail,
        )
    )


def entry_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "ts": entry.ts.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "space_id": entry.space_id,
        "project_id": entry.project_id,
        "ip": entry.ip,
        "detail": entry.detail,
    }


def query(
    session: Session,
    *,
    space_ids: list[int] | None,
    actor: str | None = None,
    project: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """Newest first. ``space_ids=None`` means every space and global entries (super only)."""
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if space_ids is not None:
        stmt = stmt.where(AuditEntry.space_id.in_(space_ids))
    if actor:
        stmt = stmt.where(AuditEntry.actor == actor)
    if project:
        ids = select(Project.id).where(Project.name == project)
        if (ident := row_id(project)) is not None:
            ids = select(Project.id).where(Project.id == ident)
        stmt = stmt.where(AuditEntry.project_id.in_(ids))
    if action:
        stmt = stmt.where(AuditEntry.action.startswith(action))
    if since:
        stmt = stmt.where(AuditEntry.ts >= since)
    if until:
        stmt = stmt.where(AuditEntry.ts < until)
    if before_id:
        stmt = stmt.where(AuditEntry.id < before_id)
    return [entry_dict(e) for e in session.scalars(stmt)]
