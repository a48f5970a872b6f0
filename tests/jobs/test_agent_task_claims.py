"""A pull-mode host's task is claimed through ``db/claims.py`` when the host fetches it, on
SQLite, PostgreSQL and MariaDB: two fetches racing for one task hand it out once; a task
is handed out again only once its lease ended (taken over), and the run that fetched it
before — its script carries the earlier claim — can then write nothing. Asserted on the task
rows, the deploy's log and what the records say each host serves."""

from __future__ import annotations

import threading

import pytest

from ferryman.db.outage import is_lost_race, is_outage
from ferryman.db.session import Database
from ferryman.errors import Conflict
from ferryman.services import agents
from tests.jobs.test_review_16_late_agents import HOSTS, V1, V2, Pull, pdb  # noqa: F401


def test_two_fetches_racing_for_one_task_hand_it_out_once(db_url: str, pdb: Database) -> None:  # noqa: F811
    for _trial in range(4):
        pull = Pull(pdb, [HOSTS])
        agents.make_due(pdb, pull.id, HOSTS)
        host = HOSTS[0]
        fetchers = [Database(db_url) for _ in range(3)]
        start = threading.Barrier(len(fetchers))
        handed: list[str] = []
        errors: list[BaseException] = []

        def fetch(i: int) -> None:
            start.wait(timeout=30)
            try:
                taken = agents.take(fetchers[i], pull.space, host)
            except Exception as exc:  # SQLite's one writer, a lost race: a refusal is fine
                if not (is_lost_race(exc) or is_outage(exc)):
                    errors.append(exc)
                return
            if taken is not None:
                handed.append(taken[0].claimed_by)

        threads = [threading.Thread(target=fetch, args=(i,)) for i in range(len(fetchers))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for each in fetchers:
            each.dispose()
        assert not errors, errors
        assert len(handed) == 1, handed  # one script went out
        task = agents.tasks_of(pdb, pull.id)[host]
        assert (task.status, task.claimed_by) == ("running", handed[0])
        assert task.claimed_by.startswith(f"{host}~") and task.lease_until is not None
        agents.cancel_open(pdb, pull.id)
        pull.end("cancelled")


def test_a_task_its_host_runs_is_not_handed_out_again_while_its_lease_lasts(pdb: Database) -> None:  # noqa: F811
    pull = Pull(pdb)
    host = HOSTS[0]
    task = pull.fetch(host)
    agents.index.forget()
    assert agents.take(pdb, pull.space, host) is None  # a second poller gets no second run
    pull.report(host, task, "pre-deploy")
    pull.report(host, task, "post-deploy", "success")
    state = agents.tasks_of(pdb, pull.id)[host]
    assert state.status == "success" and state.claimed_by == pull.claim(task)
    assert state.lease_until is None
    assert pull.live()[host] == V2


def test_a_run_whose_rollback_was_taken_over_writes_nothing_and_the_new_run_is_recorded(
    pdb: Database,  # noqa: F811
) -> None:
    pull = Pull(pdb)
    host = HOSTS[0]
    task = pull.fetch(host)
    pull.report(host, task, "pre-deploy")
    pull.report(host, task, "post-deploy", "success")
    assert pull.live()[host] == V2
    agents.cancel_open(pdb, pull.id)
    agents.create_tasks(pdb, pull.id, pull.space, [host], "rollback", "", {host: V1})
    agents.make_due(pdb, pull.id, [host], "rollback")
    rollback = pull.fetch(host)
    first = pull.claim(rollback)
    agents.index.forget()
    assert agents.take(pdb, pull.space, host) is None  # its lease holds
    # the host went silent: the worker judges it overdue, which ends its claim's lease
    assert agents.mark_unreachable(pdb, pull.id, 0.0, 0.0) == [host]
    agents.index.forget()
    again = agents.take(pdb, pull.space, host)  # the host polls again: taken over
    assert again is not None and again[0].id == rollback
    second = again[0].claimed_by
    assert second != first and second.startswith(f"{host}~")
    before = pull.lines(host)
    for phase, status in (("rollback", ""), ("rollback", "success")):
        with pytest.raises(Conflict, match="handed out again"):
            agents.report(
                pdb, pull.space, host, rollback, phase, 0, "late run", status, claim=first
            )
    assert pull.lines(host) == before and "late run" not in before  # nothing written
    assert agents.tasks_of(pdb, pull.id, "rollback")[host].status == "running"
    assert pull.live()[host] == V2
    agents.report(
        pdb, pull.space, host, rollback, "rollback", 0, "new run", "success", claim=second
    )
    state = agents.tasks_of(pdb, pull.id, "rollback")[host]
    assert (state.status, state.claimed_by, state.lease_until) == ("success", second, None)
    assert pull.live()[host] == V1
    assert "new run" in pull.lines(host)


def test_a_report_without_the_claim_of_its_fetch_is_refused(pdb: Database) -> None:  # noqa: F811
    pull = Pull(pdb)
    host = HOSTS[0]
    task = pull.fetch(host)
    for forged in ("", f"{host}~000000000000"):
        with pytest.raises(Conflict):
            agents.report(
                pdb, pull.space, host, task, "post-deploy", 0, "x", "success", claim=forged
            )
    state = agents.tasks_of(pdb, pull.id)[host]
    assert (state.status, state.phase) == ("running", "")
    assert pull.live()[host] == V1 and pull.lines(host) == []
