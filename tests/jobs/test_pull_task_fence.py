"""Pull mode's store writes are fenced by the claim's holder token, as a deploy's records are
(``services/deploy_records.fence``): a run whose deploy another claim took over — its lease
ran out in a freeze or an outage, and its retry of a write comes after the take-over — hands
out, cancels and marks nothing. Without the fence such a run could leave tasks of a deploy it
no longer holds pending or due (orphans no run waits for), or cancel what the new owner
hands out."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from ferryman.db.models import AgentTask, Deploy, DeployHost, utcnow
from ferryman.db.session import Database
from ferryman.domain.statuses import HostStatus, PullTaskStatus
from ferryman.errors import OwnershipLost
from ferryman.services import agents
from ferryman.services.deploy_store import DatabaseStore
from tests.jobs.claiming import Claimer
from tests.jobs.test_lost_lease import _expire
from tests.jobs.test_queue import _queue_jobs

LEASE = 30.0
HOSTS = ["127.0.151.201:22", "127.0.151.202:22"]  # only names in the records: never reached


class Run:
    """What the store sees of the run holding the deploy: its token, whether it knows it lost
    the deploy (it does not: it froze, and its write comes after the take-over)."""

    def __init__(self, owner: str) -> None:
        self.owner, self.lost = owner, ""

    async def ensure_owner(self) -> None:
        return None


def _tasks(db: Database, deploy_id: int) -> list[tuple[str, str, str]]:
    with db.read() as s:
        rows = s.execute(
            select(AgentTask.host, AgentTask.action, AgentTask.status)
            .where(AgentTask.deploy_id == deploy_id)
            .order_by(AgentTask.id)
        ).all()
        return [(str(h), str(a), str(st)) for h, a, st in rows]


def _host_rows(db: Database, deploy_id: int) -> dict[str, str]:
    with db.read() as s:
        rows = s.execute(
            select(DeployHost.host, DeployHost.status).where(DeployHost.deploy_id == deploy_id)
        ).all()
        return {str(h): str(st) for h, st in rows}


def _overdue(db: Database, deploy_id: int) -> None:
    """Every due task was due an hour ago: past any deadline."""
    with db.transaction() as s:
        s.execute(
            update(AgentTask)
            .where(AgentTask.deploy_id == deploy_id, AgentTask.status == PullTaskStatus.DUE)
            .values(due_at=utcnow() - timedelta(hours=1))
        )


def _taken_over(db: Database) -> tuple[int, int, str, str]:
    """A deploy claimed by ``old``, frozen past its lease and taken over by ``new``."""
    [job] = _queue_jobs(db, 1)
    with db.read() as s:
        project_id = s.scalar(select(Deploy.project_id).where(Deploy.id == job))
    assert project_id is not None
    old, new = Claimer(db, "frozen"), Claimer(db, "rescuer")
    assert old.claim_next(lease=LEASE) == job
    _expire(db, job)
    assert new.take_over_lost(LEASE) == [job]
    return job, project_id, old.holder(job), new.holder(job)


def test_a_run_whose_claim_was_taken_over_writes_no_pull_task_or_host_row(db_url: str):
    db = Database(db_url)
    db.upgrade()
    try:
        job, project_id, old, new = _taken_over(db)
        stale = DatabaseStore(db, job, project_id, "staging", Run(old))

        # before anything exists: the stale run creates no task and no host row
        with pytest.raises(OwnershipLost):
            asyncio.run(stale.create_host_tasks(HOSTS, "deploy", "r1"))
        with pytest.raises(OwnershipLost):
            asyncio.run(stale.add_host_rows())
        assert _tasks(db, job) == []
        assert _host_rows(db, job) == {}

        # the new owner's tasks: one due and overdue, one pending (its batch is next)
        owner = DatabaseStore(db, job, project_id, "staging", Run(new))
        asyncio.run(owner.create_host_tasks(HOSTS, "deploy", "r1"))
        asyncio.run(owner.add_host_rows())
        asyncio.run(owner.make_due(HOSTS[:1]))
        _overdue(db, job)
        before = _tasks(db, job)
        assert before == [
            (HOSTS[0], "deploy", PullTaskStatus.DUE),
            (HOSTS[1], "deploy", PullTaskStatus.PENDING),
        ]
        rows = {HOSTS[0]: HostStatus.PENDING, HOSTS[1]: HostStatus.PENDING}
        assert _host_rows(db, job) == rows

        # the stale run hands out, marks and cancels nothing of them
        with pytest.raises(OwnershipLost):
            asyncio.run(stale.make_due(HOSTS[1:]))
        with pytest.raises(OwnershipLost):
            asyncio.run(stale.mark_unreachable(0.0, 0.0))
        with pytest.raises(OwnershipLost):
            asyncio.run(stale.cancel_host_tasks())
        with pytest.raises(OwnershipLost):
            asyncio.run(stale.create_host_tasks(HOSTS, "rollback", "", {h: "r0" for h in HOSTS}))
        with pytest.raises(OwnershipLost):  # the service itself, called with the old token
            agents.make_due(db, job, HOSTS[1:], owner=old)
        assert _tasks(db, job) == before
        assert _host_rows(db, job) == rows

        # the claim that holds the deploy still does all of it
        assert asyncio.run(owner.mark_unreachable(0.0, 0.0)) == [HOSTS[0]]
        asyncio.run(owner.cancel_host_tasks())
        assert _tasks(db, job) == [
            (HOSTS[0], "deploy", PullTaskStatus.UNREACHABLE),
            (HOSTS[1], "deploy", PullTaskStatus.CANCELLED),
        ]
        assert _host_rows(db, job) == {
            HOSTS[0]: HostStatus.UNREACHABLE,
            HOSTS[1]: HostStatus.PENDING,
        }
    finally:
        db.dispose()
