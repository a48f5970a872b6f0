"""Leases in the database: one holder per key until released or expired.

A holder extends its lease with heartbeats; a crashed holder's lease simply runs out. Works the
same on SQLite, PostgreSQL and MariaDB (insert, or take over an expired row conditionally).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ferryman.db.clock import db_now
from ferryman.db.models import Lock
from ferryman.db.session import Database, rowcount
from ferryman.errors import LockHeld


def deploy_key(project_id: int, env: str) -> str:
    """The lock one project environment's deploys take: by the project's id, never its name
    (names are unique only within a space; two spaces' projects of one name never wait for
    each other)."""
    return f"deploy:{project_id}:{env}"


def acquire(
    db: Database,
    key: str,
    *,
    owner: str,
    deploy_id: int | None,
    holder: str,
    lease: float,
    label: str = "",
) -> None:
    """Take the lock ``key`` for ``owner`` for ``lease`` seconds, or ``LockHeld`` naming its
    holder (``label``: what the lock is of, as people call it; the key without it)."""
    try:
        with db.transaction() as s:
            now = db_now(s)
            expires = now + timedelta(seconds=lease)
            s.add(
                Lock(
                    key=key,
                    owner=owner,
                    deploy_id=deploy_id,
                    holder=holder,
                    acquired_at=now,
                    expires_at=expires,
                )
            )
        return
    except IntegrityError:
        pass
    with db.transaction() as s:
        now = db_now(s)
        expires = now + timedelta(seconds=lease)
        taken = rowcount(
            s.execute(
                update(Lock)
                .where(Lock.key == key, Lock.expires_at < now)
                .values(
                    owner=owner,
                    deploy_id=deploy_id,
                    holder=holder,
                    acquired_at=now,
                    expires_at=expires,
                )
            )
        )
        if taken == 1:
            return
        current = s.scalar(select(Lock).where(Lock.key == key))
    if current is None:  # released in between: try once more from the top
        return acquire(
            db, key, owner=owner, deploy_id=deploy_id, holder=holder, lease=lease, label=label
        )
    if current.owner == owner:  # taken by this owner's try whose answer an outage lost
        return
    what = f"deploy #{current.deploy_id}" if current.deploy_id else current.owner
    raise LockHeld(
        f"{label or key.removeprefix('deploy:').replace(':', ' ')} is locked by {what} "
        f"(started by {current.holder or 'unknown'} "
        f"at {current.acquired_at:%Y-%m-%d %H:%M:%S} UTC)",
        deploy_id=current.deploy_id,
        holder=current.holder,
    )


def heartbeat(db: Database, key: str, *, owner: str, lease: float) -> bool:
    with db.transaction() as s:
        return bool(
            rowcount(
                s.execute(
                    update(Lock)
                    .where(Lock.key == key, Lock.owner == owner)
                    .values(expires_at=db_now(s) + timedelta(seconds=lease))
                )
            )
        )


def release(db: Database, key: str, *, owner: str) -> None:
    with db.transaction() as s:
        release_in(s, key, owner=owner)


def release_in(s: Session, key: str, *, owner: str) -> None:
    """Release in the caller's transaction (with the outcome that ends a deploy, so no one
    sees the deploy ended and its lock still held, or the lock free and the deploy running)."""
    s.execute(delete(Lock).where(Lock.key == key, Lock.owner == owner))
