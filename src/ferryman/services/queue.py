"""The job queue's side of deploys: claiming the next due job atomically, the running worker's
lease and heartbeat, taking over jobs whose worker is gone, and cancel/interrupt flags.

The deploys table is the queue. See ``jobs/worker.py`` for the loop that uses these.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from ferryman.db.models import Deploy, Ticket, utcnow
from ferryman.db.session import Database, rowcount
from ferryman.domain.tickets import FROM_DEPLOY
from ferryman.errors import Conflict


def sync_ticket(s: Session, deploy: Deploy) -> None:
    """Carry a deploy's status to the ticket it runs (same transaction)."""
    if deploy.ticket_id is None:
        return
    ticket = s.get(Ticket, deploy.ticket_id)
    state = FROM_DEPLOY.get(deploy.status)
    if ticket is not None and state and ticket.status != state:
        ticket.status = state
        ticket.updated_at = utcnow()


def claim_next(
    db: Database, worker: str, queues: Sequence[str] | None = None, lease: float = 60.0
) -> int | None:
    """Atomically move the oldest due queued deploy (of ``queues``, or any) to running for
    this worker, with a lease the worker must keep extending. PostgreSQL and MariaDB lock the
    row with ``FOR UPDATE SKIP LOCKED`` (claimers never wait on each other); SQLite, which
    serialises writers anyway, uses a conditional update."""
    now = utcnow()
    running = {
        "status": "running",
        "worker": worker,
        "started_at": now,
        "lease_expires_at": now + timedelta(seconds=lease),
    }
    due = (
        select(Deploy.id)
        .where(
            Deploy.status == "queued",
            or_(Deploy.not_before.is_(None), Deploy.not_before <= now),
        )
        .order_by(Deploy.id)
    )
    if queues:
        due = due.where(Deploy.queue.in_(list(queues)))
    with db.transaction() as s:
        if s.get_bind().dialect.name in ("postgresql", "mysql", "mariadb"):
            deploy_id = s.scalar(due.limit(1).with_for_update(skip_locked=True))
            candidates = [deploy_id] if deploy_id is not None else []
        else:
            candidates = list(s.scalars(due.limit(5)))
        for candidate in candidates:
            taken = rowcount(
                s.execute(
                    update(Deploy)
                    .where(Deploy.id == candidate, Deploy.status == "queued")
                    .values(**running)
                )
            )
            if taken == 1:
                claimed = s.get(Deploy, candidate)
                assert claimed is not None
                sync_ticket(s, claimed)
                return int(candidate)
    return None


def extend_lease(db: Database, deploy_id: int, worker: str, lease: float) -> bool:
    """The running worker's heartbeat; False when the deploy is no longer its own."""
    with db.transaction() as s:
        return (
            rowcount(
                s.execute(
                    update(Deploy)
                    .where(
                        Deploy.id == deploy_id,
                        Deploy.worker == worker,
                        Deploy.status == "running",
                    )
                    .values(lease_expires_at=utcnow() + timedelta(seconds=lease))
                )
            )
            == 1
        )


def take_over_lost(db: Database, worker: str, lease: float) -> list[int]:
    """Running deploys whose worker stopped extending their lease, now leased to ``worker``
    (which must put their hosts in order and fail them: ``pipeline.recover``)."""
    now = utcnow()
    taken = []
    with db.transaction() as s:
        lost = s.scalars(
            select(Deploy.id).where(
                Deploy.status == "running",
                or_(
                    Deploy.lease_expires_at < now,
                    Deploy.lease_expires_at.is_(None)
                    & (Deploy.started_at < now - timedelta(seconds=lease)),
                ),
            )
        ).all()
        for deploy_id in lost:
            got = rowcount(
                s.execute(
                    update(Deploy)
                    .where(
                        Deploy.id == deploy_id,
                        Deploy.status == "running",
                        or_(Deploy.lease_expires_at < now, Deploy.lease_expires_at.is_(None)),
                    )
                    .values(worker=worker, lease_expires_at=now + timedelta(seconds=lease))
                )
            )
            if got == 1:
                taken.append(int(deploy_id))
    return taken


def cancel_queued(s: Session, deploy: Deploy) -> None:
    """Cancel a deploy that no worker has claimed yet (a running one cannot be cancelled)."""
    taken = rowcount(
        s.execute(
            update(Deploy)
            .where(Deploy.id == deploy.id, Deploy.status == "queued")
            .values(status="cancelled", finished_at=utcnow())
        )
    )
    if taken != 1:
        raise Conflict(f"deploy #{deploy.id} has already started; it cannot be cancelled")
    s.refresh(deploy)


def interrupt(db: Database, deploy_id: int, reason: str) -> None:
    """Ask a running deploy to stop (its worker is shutting down)."""
    with db.transaction() as s:
        s.execute(
            update(Deploy)
            .where(Deploy.id == deploy_id, Deploy.status == "running")
            .values(cancel_reason=reason[:500])
        )


def cancel_requested(db: Database, deploy_id: int) -> str:
    with db.read() as s:
        return s.scalar(select(Deploy.cancel_reason).where(Deploy.id == deploy_id)) or ""
