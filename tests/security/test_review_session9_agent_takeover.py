"""Review of session 9's claims of pull-mode tasks: can the shipped poller take a task over?

A rollback task whose host went silent stays handed out; the worker ends its claim's lease
(``mark_unreachable`` → ``claims.expire``) so that "its host's next fetch takes it over". But
the host fetches through the poller of ``commands/agent_script.py``: it asks ``GET
/agent/{host}`` with ``If-None-Match`` set to the ETag it stored when it was told of the task
(stored before it fetched the script, so a lost script answer is covered by nothing either),
and fetches ``/deploy`` only on a ``200``. The ETag named only the task (``task-<id>``), which
a takeover does not change: the poll answered ``304`` for ever and the host never rolled back.

The ETag now changes whenever the task's claim does (handed out, its lease ended), so the
poller's next poll is a ``200`` and its fetch takes the task over.

No fleet: the task rows, the announced ETags and what the host is handed are the state."""

from __future__ import annotations

from ferryman.db.session import Database
from ferryman.services import agents
from tests.jobs.test_review_16_late_agents import HOSTS, Pull, pdb  # noqa: F401


def _announced(pdb: Database, pull: Pull, host: str) -> str:  # noqa: F811
    agents.index.forget()
    due = agents.index.get(pdb, pull.space, host)
    assert due is not None
    return due.etag


def test_a_rollback_task_whose_lease_was_ended_is_announced_anew_to_the_poller(
    pdb: Database,  # noqa: F811
) -> None:
    pull = Pull(pdb)
    host = HOSTS[0]
    task = pull.fetch(host)
    pull.report(host, task, "pre-deploy")
    pull.report(host, task, "post-deploy", "success")
    agents.cancel_open(pdb, pull.id)
    agents.create_tasks(pdb, pull.id, pull.space, [host], "rollback", "", {host: "V1"})
    agents.make_due(pdb, pull.id, [host], "rollback")

    stored = _announced(pdb, pull, host)  # the poller saves this ETag, then fetches
    rollback = pull.fetch(host)
    first = pull.claim(rollback)
    # while the claim holds, whatever the poll says, no second run is handed out
    agents.index.forget()
    assert agents.take(pdb, pull.space, host) is None
    stored = _announced(pdb, pull, host)  # a poll meanwhile: the poller stores the newest

    # the host went silent: the worker ends the claim's lease
    assert agents.mark_unreachable(pdb, pull.id, 0.0, 0.0) == [host]
    # the poller's next poll carries the ETag it stored: it must not be answered 304
    assert _announced(pdb, pull, host) != stored
    agents.index.forget()
    again = agents.take(pdb, pull.space, host)  # so it fetches, and takes the task over
    assert again is not None and again[0].id == rollback
    assert again[0].claimed_by != first
    assert agents.tasks_of(pdb, pull.id, "rollback")[host].status == "running"
