"""The audit trail: who did what to which object, written in the same transaction as the act."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from ferryman.db.models import AuditEntry


@dataclass(frozen=True)
class Actor:
    id: int | None
    username: str
    is_superuser: bool = False


SYSTEM = Actor(id=None, username="system", is_superuser=True)


def record(session: Session, actor: Actor, action: str, target: str, **detail: Any) -> None:
    session.add(AuditEntry(actor=actor.username, action=action, target=target, detail=detail))
