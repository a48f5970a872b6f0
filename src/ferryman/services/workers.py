"""Workers' heartbeats: every worker writes a small row every ``HEARTBEAT`` seconds saying it
is alive, how many deploys it runs and which queues it takes; it removes its row when it
stops cleanly. ``/readyz`` and ``/metrics`` read them (any server sees every worker, since
they live in the database); a row older than ``STALE`` is a worker that died and is swept.

Take-overs of a lost worker's deploy are recorded here too (an audit row each), so that they
can be counted from the database by any server."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ferryman.db.models import AuditEntry, Deploy, KeyValue, Project, utcnow
from ferryman.db.session import Database
from ferryman.services.audit import SYSTEM, record

HEARTBEAT = 10.0  # seconds between a worker's heartbeats
RECENT = 3 * HEARTBEAT  # a heartbeat this young means the worker is alive
STALE = timedelta(days=1)  # rows of workers silent this long are removed
PREFIX = "worker:"
TAKE_OVER = "deploy.take_over"


def _key(name: str) -> str:
    return PREFIX + hashlib.sha256(name.encode()).hexdigest()[:32]


def beat(db: Database, name: str, *, concurrency: int, running: int, queues: list[str]) -> None:
    """This worker is alive now (one row, written over each time)."""
    now = utcnow()
    value = json.dumps(
        {
            "name": name,
            "concurrency": concurrency,
            "running": running,
            "queues": queues,
            "seen": now.isoformat(),
        }
    )
    with db.transaction() as s:
        row = s.get(KeyValue, _key(name))
        if row is None:
            s.add(KeyValue(key=_key(name), value=value))
        else:
            row.value = value
        for other in _rows(s):
            if _seen(other) < now - STALE:
                s.delete(other)


def forget(db: Database, name: str) -> None:
    """This worker stopped cleanly."""
    with db.transaction() as s:
        s.execute(delete(KeyValue).where(KeyValue.key == _key(name)))


def record_take_over(db: Database, deploy_id: int, worker: str) -> None:
    """``worker`` took over ``deploy_id`` from a worker whose lease ran out."""
    with db.transaction() as s:
        deploy = s.get(Deploy, deploy_id)
        project = s.get(Project, deploy.project_id) if deploy is not None else None
        record(
            s,
            SYSTEM,
            TAKE_OVER,
            f"deploy:{deploy_id}",
            space_id=project.space_id if project else None,
            project_id=project.id if project else None,
            worker=worker,
        )


def _rows(s: Session) -> list[KeyValue]:
    return list(s.scalars(select(KeyValue).where(KeyValue.key.startswith(PREFIX))))


def _seen(row: KeyValue) -> datetime:
    return datetime.fromisoformat(json.loads(row.value)["seen"])


def alive(db: Database, within: float = RECENT) -> list[dict[str, Any]]:
    """Workers whose last heartbeat is at most ``within`` seconds old, with ``age`` (s)."""
    now = utcnow()
    with db.read() as s:
        rows = _rows(s)
    found = []
    for row in rows:
        data = json.loads(row.value)
        age = (now - datetime.fromisoformat(data["seen"])).total_seconds()
        if age <= within:
            found.append({**data, "age": age})
    return sorted(found, key=lambda w: str(w["name"]))


def take_overs(s: Session) -> int:
    """How many take-overs were ever recorded."""
    return int(s.scalar(select(func.count()).where(AuditEntry.action == TAKE_OVER)) or 0)
