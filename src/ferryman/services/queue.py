"""The job queue's side of deploys: claiming the next due job atomically, the running claim's
lease and heartbeat, taking over jobs whose worker is gone, their outcome, and cancel/interrupt
flags.

The deploys table is the queue, worked through the one claim of every queue (``db/claims.py``,
``DEPLOYS``): a claim moves a deploy from ``queued`` to ``running`` with a lease and a holder
token — the worker's name and a nonce, new for every claim — in ``claimed_by``. The token is
the fence: the run renews its lease (``renew_lease``), records anything (``deploy_records``,
through the store) and writes its outcome (``finish_if_held``) only while the deploy still
names its token. A run that lost its deploy (its lease ran out while its worker was frozen or
the database away, and another claim took the deploy over) writes nothing more, even when its
own worker is the one that claimed the deploy again. ``worker`` keeps the name of the worker
that runs (or ran) it, for people.

What only this queue has is kept here: the order (priority, then age), the space limits
(``max_running``, never for rollbacks) and the claim's locking (``claim``). See
``jobs/worker.py`` for the loop that uses these.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select, text, update
from sqlalchemy.orm import Session

from ferryman.db import claims
from ferryman.db.clock import db_now
from ferryman.db.models import Deploy, Project, Space, Ticket, utcnow
from ferryman.db.session import Database, rowcount
from ferryman.domain.statuses import DeployStatus
from ferryman.domain.tickets import FROM_DEPLOY
from ferryman.errors import Conflict, InternalError
from ferryman.services import deploy_signals, locks
from ferryman.services.audit import SYSTEM, record

# Due when queued (and past ``not_before``: ``_due``), held while running; a running deploy
# whose lease ran out is taken over (``take_over_lost``), never claimed to run again. Its
# state alone tells whether a deploy is held: a queued one is free whatever its lease says.
DEPLOYS = claims.Queue(
    model=Deploy,
    ready=(DeployStatus.QUEUED,),
    held=DeployStatus.RUNNING,
    holder="claimed_by",
    lease="lease_expires_at",
    ready_is_free=True,
    named="worker",  # fenced too: a worker on the code before 0025 writes only this
)


def sync_ticket(s: Session, deploy: Deploy) -> None:
    """Carry a deploy's status to the ticket it runs (same transaction)."""
    if deploy.ticket_id is None:
        return
    ticket = s.get(Ticket, deploy.ticket_id)
    state = FROM_DEPLOY.get(deploy.status)
    if ticket is not None and state and ticket.status != state:
        ticket.status = state
        ticket.updated_at = utcnow()


ORDINARY = 100  # ``deploys.priority`` of everything but rollbacks (services.deploys)
_ATTEMPTS = 8


@dataclass(frozen=True)
class Claim:
    """A claimed deploy: its id, its priority and the claim's holder token (the fence every
    write of its run carries)."""

    id: int
    priority: int
    holder: str

    @property
    def ordinary(self) -> bool:
        """Not a rollback: held back by its space's limit and the worker's reserved slot."""
        return self.priority >= ORDINARY


def claim_next(
    db: Database,
    worker: str,
    queues: Sequence[str] | None = None,
    lease: float = 60.0,
    *,
    rollbacks_only: bool = False,
) -> int | None:
    """``claim``, returning only the deploy's id."""
    got = claim(db, worker, queues, lease, rollbacks_only=rollbacks_only)
    return got.id if got else None


def claim(
    db: Database,
    worker: str,
    queues: Sequence[str] | None = None,
    lease: float = 60.0,
    *,
    rollbacks_only: bool = False,
) -> Claim | None:
    """Atomically move the next due queued deploy (of ``queues``, or any) to running for this
    worker, with a lease the run must keep renewing and a new holder token (``Claim.holder``).

    The next one is the lowest ``priority`` (emergency rollbacks 0, rollbacks 10, the rest
    100), then the oldest. An ordinary deploy whose space already runs ``max_running`` deploys
    is passed over until one of them ends; rollbacks are never held back by the space's limit
    (putting production back beats fairness). ``rollbacks_only``: the worker's last free slot.

    Under concurrency: PostgreSQL and MariaDB take the deploy row with ``FOR UPDATE SKIP
    LOCKED`` (claimers never wait for each other's rows) and then lock the space's row, so
    two claimers of one space count its running deploys one after the other (READ COMMITTED,
    so the second sees the first's claim); SQLite starts the claim with ``BEGIN IMMEDIATE``,
    which takes the database's one write lock before anything is read."""
    with db.read() as s:  # idle workers poll: only a due job is worth the write lock
        if s.scalar(_due(db_now(s), queues, rollbacks_only).limit(1)) is None:
            return None
    for _ in range(_ATTEMPTS):
        outcome = _claim_once(db, worker, queues, lease, rollbacks_only)
        if not isinstance(outcome, _Retry):
            return outcome
    return None


class _Retry:
    """Lost a race (the space filled up, or another claimer took the row): try again."""


_RETRY = _Retry()


def _claim_once(
    db: Database,
    worker: str,
    queues: Sequence[str] | None,
    lease: float,
    rollbacks_only: bool,
) -> Claim | _Retry | None:
    with db.transaction() as s:
        locking = s.get_bind().dialect.name in ("postgresql", "mysql", "mariadb")
        if locking:
            s.connection(execution_options={"isolation_level": "READ COMMITTED"})
        else:
            s.execute(text("BEGIN IMMEDIATE"))
        now = db_now(s)
        due = _due(now, queues, rollbacks_only).add_columns(Deploy.priority, Deploy.project_id)
        held = _projects_of_full_spaces(s)
        if held:
            due = due.where(or_(Deploy.priority < ORDINARY, Deploy.project_id.not_in(held)))
        due = due.order_by(Deploy.priority, Deploy.id).limit(1)
        if locking:
            due = due.with_for_update(skip_locked=True)
        row = s.execute(due).first()
        if row is None:
            return None
        deploy_id, priority, project_id = int(row[0]), int(row[1]), int(row[2])
        if priority >= ORDINARY:
            space_id = s.scalar(select(Project.space_id).where(Project.id == project_id))
            if space_id is None:  # its project was deleted meanwhile
                return _RETRY
            limit = _lock_space(s, space_id, locking)
            if running_in_space(s, space_id) >= limit:
                return _RETRY
        taken = claims.claim_row(
            s,
            DEPLOYS,
            deploy_id,
            worker,
            lease,
            now,
            where=(Deploy.status == DeployStatus.QUEUED,),
            values={"worker": worker, "started_at": now},
        )
        if taken is None:
            return _RETRY
        claimed = s.get(Deploy, deploy_id)
        if claimed is None:
            raise InternalError(f"deploy #{deploy_id} is gone in the transaction that claimed it")
        sync_ticket(s, claimed)
        return Claim(deploy_id, priority, taken.holder)


def _due(now: datetime, queues: Sequence[str] | None, rollbacks_only: bool) -> Select[int]:
    due = select(Deploy.id).where(
        Deploy.status == DeployStatus.QUEUED,
        or_(Deploy.not_before.is_(None), Deploy.not_before <= now),
    )
    if queues:
        due = due.where(Deploy.queue.in_(list(queues)))
    if rollbacks_only:
        due = due.where(Deploy.priority < ORDINARY)
    return due


def running_in_space(s: Session, space_id: int) -> int:
    return int(
        s.scalar(
            select(func.count())
            .select_from(Deploy)
            .join(Project, Project.id == Deploy.project_id)
            .where(Project.space_id == space_id, Deploy.status == DeployStatus.RUNNING)
        )
        or 0
    )


def _projects_of_full_spaces(s: Session) -> list[int]:
    """Projects whose space runs as many deploys as it may (their ordinary deploys wait)."""
    running = (
        select(Project.space_id, func.count(Deploy.id).label("n"))
        .join(Deploy, Deploy.project_id == Project.id)
        .where(Deploy.status == DeployStatus.RUNNING)
        .group_by(Project.space_id)
        .subquery()
    )
    full = select(Space.id).join(running, running.c.space_id == Space.id)
    full = full.where(running.c.n >= Space.max_running)
    return [int(i) for i in s.scalars(select(Project.id).where(Project.space_id.in_(full)))]


def _lock_space(s: Session, space_id: int, locking: bool) -> int:
    """The space's ``max_running``, its row locked until the claim commits (SQLite: the
    claim already holds the database's write lock)."""
    stmt = select(Space.max_running).where(Space.id == space_id)
    if locking:
        stmt = stmt.with_for_update()
    return int(s.scalar(stmt) or 0)


def renew_lease(db: Database, deploy_id: int, holder: str, lease: float) -> bool:
    """The running claim's heartbeat: its lease renewed for ``lease`` seconds from now (the
    database's clock); False when ``holder`` no longer holds the deploy (taken over, or its
    outcome written), and nothing renewed."""
    with db.transaction() as s:
        return claims.renew(s, DEPLOYS, deploy_id, holder, lease) is not None


def take_over_lost(
    db: Database, worker: str, lease: float, *, leave: Collection[int] = ()
) -> list[claims.Claim]:
    """Running deploys whose claim stopped renewing its lease, each claimed again for
    ``worker`` with a new holder token (which must put their hosts in order and fail them:
    ``pipeline.recover``); the old claim is fenced from then on.

    Never ``worker``'s own: a lease of its own that ran out (a database outage longer than
    the lease) belongs to a run that may still be going; it either renews the lease again
    once the database is back or is taken over by another worker. (The fence does not rest
    on this: a deploy this worker takes over again later, after another worker had it, gets
    a new token, and the old run's token is refused.) Nor any of ``leave``: the deploys
    this worker still runs or recovers under an earlier claim — that run, fenced now, ends
    first, and a later round takes the deploy over with nothing of this worker's on it."""
    not_own = or_(Deploy.worker.is_(None), Deploy.worker != worker)
    running: tuple[ColumnElement[bool], ...] = (Deploy.status == DEPLOYS.held, not_own)
    if leave:
        running = (*running, Deploy.id.not_in(list(leave)))
    taken = []
    with db.transaction() as s:
        now = db_now(s)
        lost = s.scalars(
            select(Deploy.id).where(claims.takeable(DEPLOYS, now), *running).order_by(Deploy.id)
        ).all()
        for deploy_id in lost:
            got = claims.claim_row(
                s, DEPLOYS, int(deploy_id), worker, lease, now, where=running,
                values={"worker": worker},
            )  # fmt: skip
            if got is not None:
                taken.append(got)
    return taken


def record_outcome(s: Session, deploy: Deploy, status: str, error: dict[str, Any] | None) -> None:
    """A deploy's final status and error, and what follows from them in the same
    transaction: the ticket's state, the notification, the audit row."""
    deploy.status = status  # through the model: leaving the active states frees the env
    deploy.error = error
    deploy.finished_at = deploy.finished_at or utcnow()
    deploy_signals.changed(s, deploy.id)  # its followers learn the end at the commit
    sync_ticket(s, deploy)
    if status in (DeployStatus.SUCCESS, DeployStatus.FAILED):
        from ferryman.services import notifications

        event = "deploy.succeeded" if status == DeployStatus.SUCCESS else "deploy.failed"
        notifications.deploy_event(s, event, deploy)
    if status == DeployStatus.SUCCESS:  # health checks keep watching where the env asks (watch:)
        from ferryman.services import watch

        watch.start_for(s, deploy)
    project = s.get(Project, deploy.project_id)
    record(
        s,
        SYSTEM,
        f"{deploy.kind}.{status}",
        f"deploy:{deploy.id}",
        space_id=project.space_id if project else None,
        project_id=deploy.project_id,
        release=deploy.release_name or deploy.target_release,
        error=error,
    )


def finish_if_held(
    db: Database,
    deploy_id: int,
    holder: str,
    status: str,
    error: dict[str, Any] | None,
    lock: tuple[str, str] | None = None,
) -> bool:
    """Write a running deploy's outcome only while ``holder`` (the claim's token) still holds
    it — one conditional update that also ends the claim, like ``deploys.finish`` otherwise:
    ticket, notification, audit row — releasing its project lock ``(key, owner)`` in the same
    transaction. False, and nothing written, when the claim was lost: the deploy's outcome is
    its new claim's to write."""
    with db.transaction() as s:
        # the conditional update also locks the row until the commit
        if not claims.finish(
            s, DEPLOYS, deploy_id, holder, {"finished_at": utcnow()}, keep_holder=False
        ):
            return False
        deploy = s.get(Deploy, deploy_id)
        if deploy is None:
            raise InternalError(f"deploy #{deploy_id} is gone in the transaction that ended it")
        s.refresh(deploy)
        record_outcome(s, deploy, status, error)
        if lock is not None:
            locks.release_in(s, lock[0], owner=lock[1])
        return True


def cancel_queued(s: Session, deploy: Deploy) -> None:
    """Cancel a deploy that no worker has claimed yet (a running one cannot be cancelled)."""
    taken = rowcount(
        s.execute(
            update(Deploy)
            .where(Deploy.id == deploy.id, Deploy.status == DeployStatus.QUEUED)
            .values(status=DeployStatus.CANCELLED, finished_at=utcnow(), active_key=None)
        )
    )
    if taken != 1:
        raise Conflict(f"deploy #{deploy.id} has already started; it cannot be cancelled")
    deploy_signals.changed(s, deploy.id)
    s.refresh(deploy)


def interrupt(db: Database, deploy_id: int, reason: str) -> None:
    """Ask a running deploy to stop (its worker is shutting down)."""
    with db.transaction() as s:
        s.execute(
            update(Deploy)
            .where(Deploy.id == deploy_id, Deploy.status == DeployStatus.RUNNING)
            .values(cancel_reason=reason[:500])
        )


def cancel_requested(db: Database, deploy_id: int) -> str:
    with db.read() as s:
        return s.scalar(select(Deploy.cancel_reason).where(Deploy.id == deploy_id)) or ""
