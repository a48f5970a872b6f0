"""Claims: how a queue of rows is worked by one worker at a time, whatever the queue.

A queue is a table whose rows wait in some states until they are due. A worker *claims* a
due row with a conditional ``UPDATE`` that gives it a lease (an expiry in the database's
clock, ``db/clock.py``) and a *holder token* — the worker's name and a nonce, new for every
claim. The token is the fence: the claim *renews* its lease, and *finishes* the row (or
writes anything else about it), only while the row still names that token, so a claim that
was lost — its lease ran out while its worker was frozen or the database away, and another
claim took the row — can no longer write, even when the same worker claimed it again. A row
whose lease ran out is due again: the next claim *takes it over*.

Each queue declares itself once as a ``Queue``: its model, the states a due row is claimed
from, the state a claim holds it in, and the names of its due, holder and lease columns.
Every function takes the caller's ``Session``, so a claim, a renewal or an outcome is one
transaction with whatever else the caller writes (the services that own each queue call
these; nothing here commits).

It lives in ``db/`` beside the clock because it is a database primitive: ``services/`` (the
writers of each queue), ``notify/`` and ``jobs/`` all sit above ``db/`` and may use it, while
``jobs/`` — the worker loop — imports ``services/`` and so cannot be below them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from ferryman.db.clock import db_now
from ferryman.db.session import rowcount


@dataclass(frozen=True)
class Queue:
    """What a queue declares: its table (an ORM model with an integer ``id``), the states a
    due row may be claimed from (``ready``), the state a claim holds it in (``held``; may be
    one of ``ready``), and its columns: when a row is due (None: as soon as it is ready), who
    holds it (the holder token, a string column) and until when (a nullable datetime)."""

    model: type[Any]
    ready: tuple[str, ...]
    held: str
    due: str | None = None
    holder: str = "claimed_by"
    lease: str = "lease_until"
    status: str = "status"
    order: str | None = None  # claim order: the due column, else the id
    # A row in a ready state is free whatever its lease column says: its state alone tells
    # whether it is held (only for a queue whose ``held`` state is none of ``ready``)
    ready_is_free: bool = False
    # A column naming the worker of the claim, checked by the fence beside the token: a
    # claimer on code older than the token (a worker not yet restarted after an upgrade's
    # migration) takes a row over by writing only this column, and the claim it took the row
    # from must then be fenced too
    named: str | None = None

    def column(self, name: str) -> Any:
        return getattr(self.model, name)


@dataclass(frozen=True)
class Claim:
    """One claim of one row: its id, this claim's holder token (the fence), the lease's end
    in the database's clock, and the columns the claimer asked to read with it."""

    id: int
    holder: str
    lease_until: datetime
    row: tuple[Any, ...] = ()


def token(worker: str) -> str:
    """A new holder token for one claim by ``worker``: its name (cut to fit) and a nonce."""
    return f"{worker[:180]}~{secrets.token_hex(6)}"


def worker_of(holder: str) -> str:
    """The worker named in a holder token (``token``), to show who holds a row."""
    return holder.rpartition("~")[0] or holder


def takeable(q: Queue, now: datetime) -> ColumnElement[bool]:
    """Due, and held by nobody: ready with no lease or an expired one (or whatever its lease,
    with ``ready_is_free``), or held under a lease that ran out (its claimer died or stopped
    renewing: taken over)."""
    lease = q.column(q.lease)
    ready: ColumnElement[bool] = q.column(q.status).in_(q.ready)
    if not (q.ready_is_free and q.held not in q.ready):
        ready = and_(ready, or_(lease.is_(None), lease < now))
    if q.held not in q.ready:
        ready = or_(ready, and_(q.column(q.status) == q.held, lease < now))
    if q.due is None:
        return ready
    return and_(ready, q.column(q.due) <= now)


def claim_due(
    s: Session,
    q: Queue,
    worker: str,
    lease: float,
    limit: int = 20,
    *,
    read: tuple[str, ...] = (),
    where: tuple[ColumnElement[bool], ...] = (),
    values: dict[str, Any] | None = None,
) -> list[Claim]:
    """Claim up to ``limit`` due rows for ``worker`` for ``lease`` seconds, oldest due first:
    each by its own conditional update, so two claimers never both hold a row. A claimed row
    is put in the ``held`` state with a new holder token; ``values`` are written with the
    claim, ``where`` narrows which rows are due, ``read`` names columns returned with each."""
    now = db_now(s)
    order = q.column(q.order or q.due or "id")
    ids = s.execute(
        select(q.column("id"), *(q.column(name) for name in read))
        .where(takeable(q, now), *where)
        .order_by(order, q.column("id"))
        .limit(limit)
    ).all()
    out: list[Claim] = []
    for row_id, *rest in ids:
        claim = claim_row(s, q, int(row_id), worker, lease, now, where=where, values=values)
        if claim is not None:
            out.append(Claim(claim.id, claim.holder, claim.lease_until, tuple(rest)))
    return out


def claim_row(
    s: Session,
    q: Queue,
    row_id: int,
    worker: str,
    lease: float,
    now: datetime,
    *,
    where: tuple[ColumnElement[bool], ...] = (),
    values: dict[str, Any] | None = None,
) -> Claim | None:
    """Claim one row the caller picked (``now``: the database's time it read it at) by the
    same conditional update as ``claim_due``: the claim, or None when it is not takeable any
    more (another claim, or a change committed meanwhile, came first)."""
    holder = token(worker)
    until = now + timedelta(seconds=lease)
    taken = s.execute(
        update(q.model)
        .where(q.column("id") == row_id, takeable(q, now), *where)
        .values({q.status: q.held, q.holder: holder, q.lease: until, **(values or {})})
        .execution_options(synchronize_session=False)
    )
    return Claim(row_id, holder, until) if rowcount(taken) == 1 else None


def expire(
    s: Session, q: Queue, row_id: int, *, where: tuple[ColumnElement[bool], ...] = ()
) -> bool:
    """End the lease of a held row now, keeping it held: whoever judged its claimer late
    (a deadline of the queue's own) lets the next claim take it over, and the late claim
    is fenced once another claim took it. True when the row was held (and is now free)."""
    done = s.execute(
        update(q.model)
        .where(q.column("id") == row_id, q.column(q.status) == q.held, *where)
        .values({q.lease: db_now(s) - timedelta(seconds=1)})
        .execution_options(synchronize_session=False)
    )
    return rowcount(done) == 1


def renew(s: Session, q: Queue, row_id: int, holder: str, lease: float) -> datetime | None:
    """Extend the claim's lease to ``lease`` seconds from now (the database's clock); the new
    end while ``holder`` still holds the row, None once the claim was lost (taken over, ended
    by someone else, or finished) — its work must then stop and write nothing."""
    until = db_now(s) + timedelta(seconds=lease)
    done = s.execute(update(q.model).where(_held_by(q, row_id, holder)).values({q.lease: until}))
    return until if rowcount(done) == 1 else None


def _held_by(q: Queue, row_id: int, holder: str) -> ColumnElement[bool]:
    held = and_(
        q.column("id") == row_id,
        q.column(q.status) == q.held,
        q.column(q.holder) == holder,
        q.column(q.holder) != "",
    )
    return held if q.named is None else and_(held, q.column(q.named) == worker_of(holder))


def _is_held(q: Queue, state: Any, named: Any, by: Any, holder: str) -> bool:
    """The fence of ``_held_by``, on values read from the row."""
    mine = state == q.held and by == holder
    return mine and (q.named is None or named == worker_of(holder))


def holds(s: Session, q: Queue, row_id: int, holder: str) -> bool:
    """Whether ``holder`` still holds the row, which stays locked for the rest of the
    transaction (only its state and holder are read): the fence of a write about the row
    made elsewhere (its records), so a take-over waits for that write or comes before it."""
    if not holder:
        return False
    row = s.execute(
        select(q.column(q.status), q.column(q.holder), q.column(q.named or q.holder))
        .where(q.column("id") == row_id)
        .with_for_update()
    ).first()
    return row is not None and _is_held(q, row[0], row[2], row[1], holder)


def held(s: Session, q: Queue, row_id: int, holder: str) -> Any | None:
    """The row, locked for the rest of the transaction, if ``holder`` still holds it: the
    fence an outcome is written behind (change the row, then ``let_go`` of it)."""
    if not holder:
        return None
    row = s.scalar(select(q.model).where(q.column("id") == row_id).with_for_update())
    if row is None:
        return None
    named = getattr(row, q.named) if q.named else None
    if not _is_held(q, getattr(row, q.status), named, getattr(row, q.holder), holder):
        return None
    return row


def let_go(q: Queue, row: Any, *, keep_holder: bool = False) -> None:
    """End the lease of a row ``held`` returned (the work is written); the holder token is
    cleared too unless ``keep_holder`` (to show who finished it)."""
    setattr(row, q.lease, None)
    if not keep_holder:
        setattr(row, q.holder, "")


def finish(
    s: Session, q: Queue, row_id: int, holder: str, values: dict[str, Any], *, keep_holder: bool
) -> bool:
    """Write ``values`` (the outcome, or the row's next wait) and end the lease, in one
    conditional update: True while ``holder`` held the row, False for a lost claim, which
    writes nothing."""
    done = s.execute(
        update(q.model)
        .where(_held_by(q, row_id, holder))
        .values({**values, q.lease: None, **({} if keep_holder else {q.holder: ""})})
    )
    return rowcount(done) == 1


def claim_once(s: Session, model: type[Any], row_id: int, marker: str, key: str) -> bool:
    """Claim the work of ``key`` (a period: ``2026-11-29``, ``2026-W48``) on a row for good:
    move its ``marker`` column forward to ``key`` by a conditional update, True for the one
    claimer that moved it, False when it is there already or past it. No lease and no holder:
    for work that commits in the claim's own transaction (queueing a message), so a claimer
    that dies takes its claim with it."""
    column = getattr(model, marker)
    done = s.execute(update(model).where(model.id == row_id, column < key).values({marker: key}))
    return rowcount(done) == 1
