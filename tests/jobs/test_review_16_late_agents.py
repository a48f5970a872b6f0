"""Review of the pull-mode go-ahead (issue 16): late, racing, replayed and forged host reports
against the server's side (``services/agents.report``), on SQLite, PostgreSQL and MariaDB.

Each test builds a pull deploy's tasks the way the worker does and plays the hosts' reports
as the generated script sends them, then asserts on what the records say each host serves
(``host_states``), the release rows, the task rows and the deploy's log — the truth the next
rollback relies on. Each test was first shown failing against the code it reviewed."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from ferryman.bootstrap import attach_key
from ferryman.config.project import parse_project
from ferryman.db.clock import db_now
from ferryman.db.models import Deploy, LogLine, Release
from ferryman.db.session import Database
from ferryman.errors import Conflict, PermissionDenied
from ferryman.secretbox import SecretBox, new_key
from ferryman.services import agents, deploy_records, deploy_views, deploys, projects
from ferryman.services.projects import space_of_project
from tests.conftest import set_approval
from tests.helpers import ADMIN, unique
from tests.jobs.claiming import Claimer

V1, V2 = "20200101-000000_v1_1111111", "20200102-000000_v2_2222222"
HOSTS = [f"127.0.140.{n}:22" for n in (51, 52, 53)]


@pytest.fixture
def pdb(db_url: str) -> Iterator[Database]:
    """A migrated database on each backend, with a secret key (the report masks secrets)."""
    db = Database(db_url)
    db.upgrade()
    attach_key(db, SecretBox(new_key()))
    set_approval(db, "production", False)
    try:
        yield db
    finally:
        db.dispose()


class Pull:
    """A pull deploy of V2 over V1 on ``HOSTS``, its tasks made as ``pipeline/pull.run`` does."""

    def __init__(self, db: Database, batches: list[list[str]] | None = None) -> None:
        self.db = db
        self.claims: dict[int, str] = {}  # task id -> the holder token its fetch got
        name = unique("late")
        config = {
            "project": name,
            "repo": "ssh://git@127.0.140.9/late.git",
            "environments": {
                "production": {
                    "hosts": HOSTS,
                    "user": "root",
                    "mode": "pull",
                    "webroot": f"/srv/www/{name}",
                    "releases": f"/srv/releases/{name}",
                }
            },
        }
        projects.apply_project(db, ADMIN, parse_project(config))
        self.name = name
        self.deploy = deploys.request_deploy(db, ADMIN, name, "production", "v2")
        self.id, self.project = self.deploy.id, self.deploy.project_id
        deploy_records.set_live(db, self.project, "production", self.id, dict.fromkeys(HOSTS, V1))
        with db.transaction() as s:
            row = s.get(Deploy, self.id)
            assert row is not None, f"no deploy #{self.id}"
            row.status, row.release_name, row.worker = "running", V2, "w:1:x"
        self.space = space_of_project(db, self.project)
        agents.create_tasks(db, self.id, self.space, HOSTS, "deploy", V2)
        agents.host_rows(db, self.id)
        for batch in batches or [HOSTS[:1]]:
            agents.make_due(db, self.id, batch)
            break  # only the first batch is due; the others stay pending

    def fetch(self, host: str) -> int:
        taken = agents.take(self.db, self.space, host)
        assert taken is not None, f"nothing due for {host}"
        self.claims[taken[0].id] = taken[0].claimed_by  # the script it got carries its claim
        return taken[0].id

    def claim(self, task: int) -> str:
        return self.claims.get(task, "")

    def report(self, host: str, task: int, phase: str, status: str = "", code: int = 0) -> None:
        agents.report(
            self.db,
            self.space,
            host,
            task,
            phase,
            code,
            f"{phase} out",
            status,
            V1,
            claim=self.claim(task),
        )

    def end(self, status: str = "cancelled") -> None:
        with self.db.transaction() as s:
            row = s.get(Deploy, self.id)
            assert row is not None, f"no deploy #{self.id}"
            row.status = status

    def live(self) -> dict[str, str]:
        return deploy_views.live_releases(self.db, self.project, "production")

    def complete(self) -> set[str]:
        with self.db.read() as s:
            return {
                r.host
                for r in s.scalars(
                    select(Release).where(Release.project_id == self.project, Release.name == V2)
                )
                if r.state == "complete"
            }

    def lines(self, host: str) -> list[str]:
        with self.db.read() as s:
            return list(
                s.scalars(
                    select(LogLine.text).where(LogLine.deploy_id == self.id, LogLine.host == host)
                )
            )


# --- races ---------------------------------------------------------------------------------


@pytest.mark.parametrize("against", ["cancel_open", "deploy_ends"])
def test_a_final_report_racing_a_cancel_is_either_taken_whole_or_refused_whole(pdb, against):
    """Many trials, two threads: the host's success against the worker's cancel_open (or the
    deploy's end). Whatever wins, the records agree with the answer the host got."""
    trials = 16
    outcomes: list[str] = []
    for trial in range(trials):
        pull = Pull(pdb, [HOSTS])
        agents.make_due(pdb, pull.id, HOSTS)
        host = HOSTS[trial % 3]
        task = pull.fetch(host)
        pull.report(host, task, "pre-deploy")
        pull.report(host, task, "do-deploy")
        answer: list[str] = []
        barrier = threading.Barrier(2)

        def host_side() -> None:
            barrier.wait()
            try:
                pull.report(host, task, "post-deploy", "success")
                answer.append("taken")
            except Conflict as exc:
                answer.append(f"refused: {exc}")

        def worker_side() -> None:
            barrier.wait()
            time.sleep(random.uniform(0, 0.012))  # both orders, and everything in between
            if against == "cancel_open":
                agents.cancel_open(pdb, pull.id)
            else:
                pull.end("cancelled")

        threads = [threading.Thread(target=host_side), threading.Thread(target=worker_side)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(answer) == 1, answer
        outcomes.append(answer[0][:7])
        state = agents.tasks_of(pdb, pull.id)[host]
        if answer[0] == "taken":
            assert state.status == "success"
            assert pull.live()[host] == V2 and host in pull.complete()
        else:
            assert state.status == "cancelled", (answer, state.status)
            assert pull.live()[host] == V1 and host not in pull.complete(), answer
            assert not any("(success)" in line for line in pull.lines(host))
        agents.cancel_open(pdb, pull.id)  # the other hosts' due tasks go with the deploy
        pull.end("cancelled")
    print(against, {o: outcomes.count(o) for o in set(outcomes)})  # shown with -s


# --- duplicates, replays, forgeries ---------------------------------------------------------


def test_a_final_report_sent_twice_is_taken_once_and_a_different_last_word_is_refused(pdb):
    pull = Pull(pdb)
    host = HOSTS[0]
    task = pull.fetch(host)
    pull.report(host, task, "pre-deploy")
    pull.report(host, task, "post-deploy", "success")
    pull.report(host, task, "post-deploy", "success")  # the retry after a lost answer
    assert sum("(success)" in line for line in pull.lines(host)) == 1
    for status, phase, code in (("rolled_back", "post-deploy", 1), ("failed", "post-deploy", 0)):
        with pytest.raises(Conflict):
            pull.report(host, task, phase, status, code)
    with pytest.raises(Conflict):  # and a non-final one after the last word
        pull.report(host, task, "do-deploy")
    assert agents.tasks_of(pdb, pull.id)[host].status == "success"
    assert pull.live()[host] == V2


def test_another_hosts_task_cannot_be_reported_with_a_token_of_this_host(pdb):
    pull = Pull(pdb, [HOSTS])
    agents.make_due(pdb, pull.id, HOSTS)
    victim = pull.fetch(HOSTS[1])
    for host in (HOSTS[0], HOSTS[2]):  # the space and host the token authenticates as
        with pytest.raises(PermissionDenied):
            agents.report(
                pdb,
                pull.space,
                host,
                victim,
                "post-deploy",
                0,
                "",
                "success",
                V1,
                claim=pull.claim(victim),
            )
    with pytest.raises(PermissionDenied):  # another space's
        agents.report(
            pdb,
            pull.space + 1000,
            HOSTS[1],
            victim,
            "post-deploy",
            0,
            "",
            "success",
            claim=pull.claim(victim),
        )
    assert agents.tasks_of(pdb, pull.id)[HOSTS[1]].status == "running"
    assert pull.live()[HOSTS[1]] == V1


def test_a_host_of_a_later_batch_cannot_report_before_its_batch_is_due(pdb):
    pull = Pull(pdb, [HOSTS[:1], HOSTS[1:]])
    later = HOSTS[2]
    pending = agents.tasks_of(pdb, pull.id)[later]
    assert pending.status == "pending"
    try:
        pull.report(later, pending.id, "post-deploy", "success")
    except (Conflict, PermissionDenied):
        pass
    assert agents.tasks_of(pdb, pull.id)[later].status == "pending"
    assert pull.live()[later] == V1, "recorded on a release it was never handed"
    assert later not in pull.complete()


# --- late hosts: the record must say what the host serves ------------------------------------


def _switched_and_told_back(pull: Pull) -> tuple[str, int]:
    """HOSTS[0] switched to V2 (success), then the deploy failed and it was told to roll back
    to V1; it fetched the rollback script (which switches, whatever the server answers)."""
    host = HOSTS[0]
    task = pull.fetch(host)
    pull.report(host, task, "pre-deploy")
    pull.report(host, task, "post-deploy", "success")
    assert pull.live()[host] == V2
    agents.cancel_open(pull.db, pull.id)
    agents.create_tasks(pull.db, pull.id, pull.space, [host], "rollback", "", {host: V1})
    agents.make_due(pull.db, pull.id, [host], "rollback")
    return host, pull.fetch(host)


def test_a_rollback_reported_after_the_deploy_ended_is_still_recorded(pdb):
    pull = Pull(pdb)
    host, rollback = _switched_and_told_back(pull)
    pull.end("failed")  # the worker stopped waiting (or the run was lost) meanwhile
    # the rollback script switched the host to V1 and restarted it, then reported:
    try:
        agents.report(
            pdb,
            pull.space,
            host,
            rollback,
            "rollback",
            0,
            "",
            "success",
            claim=pull.claim(rollback),
        )
    except Conflict:
        pass  # the rollback script ignores the answer: the host is on V1 either way
    assert pull.live()[host] == V1, "the record names a release the host left"


def test_a_switched_host_away_during_the_rollback_still_rolls_back_when_it_returns(pdb):
    pull = Pull(pdb)
    host = HOSTS[0]
    task = pull.fetch(host)
    pull.report(host, task, "pre-deploy")
    pull.report(host, task, "post-deploy", "success")
    agents.cancel_open(pdb, pull.id)
    agents.create_tasks(pdb, pull.id, pull.space, [host], "rollback", "", {host: V1})
    agents.make_due(pdb, pull.id, [host], "rollback")
    # pull._wait: the host does not poll within unreachable_after
    assert agents.mark_unreachable(pdb, pull.id, 0.0, 0.0) == [host]
    pull.end("cancelled")
    agents.index.forget()
    back = agents.take(pdb, pull.space, host)  # the host polls again, an hour later
    assert back is not None and back[0].action == "rollback", "nothing tells it to go back"


def test_a_go_ahead_host_of_a_cancelled_deploy_is_refused_and_nothing_is_recorded(pdb):
    """A host that had its go-ahead when cancel_open ran: its later reports are refused
    (the real script switches back), and nothing says it serves V2."""
    pull = Pull(pdb)
    host = HOSTS[0]
    task = pull.fetch(host)
    pull.report(host, task, "pre-deploy")
    agents.cancel_open(pdb, pull.id)
    for phase, status in (("do-deploy", ""), ("post-deploy", "success")):
        with pytest.raises(Conflict):
            pull.report(host, task, phase, status)
    assert agents.tasks_of(pdb, pull.id)[host].status == "cancelled"
    assert pull.live()[host] == V1 and host not in pull.complete()


# --- the recovery of a pull deploy whose worker died (pipeline/recover -> pull.recover) ------


def _recover(db: Database, settings, pull: Pull) -> dict:
    """The worker died (its lease ran out); a rescuer recovers the deploy while the hosts
    that are told to roll back do so at once. Returns the deploy as shown."""
    import asyncio
    import time
    from datetime import timedelta

    from sqlalchemy import update

    from ferryman.db.models import utcnow
    from ferryman.jobs.recover_job import recover

    with db.transaction() as s:
        s.execute(
            update(Deploy)
            .where(Deploy.id == pull.id)
            .values(
                worker="gone:1:dead",
                lease_expires_at=utcnow() - timedelta(seconds=5),
                stages=[{"name": "hosts", "status": "running", "hosts": {}}],
            )
        )
    claimer = Claimer(db, "rescuer")
    assert claimer.take_over_lost(30) == [pull.id]
    rescuer = threading.Thread(
        target=lambda: asyncio.run(recover(db, settings, pull.id, claimer.holder(pull.id)))
    )
    rescuer.start()
    answered: set[int] = set()
    deadline = time.monotonic() + 60
    while rescuer.is_alive() and time.monotonic() < deadline:
        for host, each in agents.tasks_of(db, pull.id, "rollback").items():
            if each.status in ("due", "running") and each.id not in answered:
                agents.index.forget()
                taken = agents.take(db, pull.space, host)  # the host polls, fetches its script
                claim = taken[0].claimed_by if taken else ""
                agents.report(
                    db, pull.space, host, each.id, "rollback", 0, "", "success", claim=claim
                )
                answered.add(each.id)
        time.sleep(0.2)
    rescuer.join(30)
    assert not rescuer.is_alive()
    return deploy_views.get(db, pull.id)


@pytest.fixture
def sdb(db: Database) -> Database:  # SQLite in the settings' home: what recover() opens
    return db


def test_recovery_tells_a_host_that_had_its_go_ahead_to_roll_back(sdb, settings):
    pull = Pull(sdb, [HOSTS])
    agents.make_due(sdb, pull.id, HOSTS)
    done, busy = HOSTS[0], HOSTS[1]
    task = pull.fetch(done)
    pull.report(done, task, "pre-deploy")
    pull.report(done, task, "post-deploy", "success")
    busy_task = pull.fetch(busy)
    pull.report(busy, busy_task, "pre-deploy")  # its go-ahead: it switches now
    shown = _recover(sdb, settings, pull)
    assert shown["status"] == "failed"
    # the busy host switched, then lost the server: its do-deploy/post-deploy reports get no
    # answer, so the script keeps V2 ("the server decides") and exits 0
    told = agents.tasks_of(sdb, pull.id, "rollback")
    assert done in told
    assert busy in told, f"{busy} may serve V2 and nothing tells it to go back"


def test_a_recovered_first_deploy_does_not_leave_the_switched_hosts_on_it(sdb, settings):
    pull = Pull(sdb, [HOSTS])
    with sdb.transaction() as s:  # a first deploy: nothing was live before
        from sqlalchemy import delete

        from ferryman.db.models import HostState

        s.execute(delete(HostState).where(HostState.project_id == pull.project))
    agents.make_due(sdb, pull.id, HOSTS)
    done = HOSTS[0]
    task = pull.fetch(done)
    mine = pull.claim(task)
    agents.report(sdb, pull.space, done, task, "pre-deploy", 0, "", "", "", claim=mine)
    agents.report(sdb, pull.space, done, task, "post-deploy", 0, "", "success", "", claim=mine)
    assert pull.live()[done] == V2
    busy = HOSTS[1]
    busy_task = pull.fetch(busy)
    agents.report(
        sdb, pull.space, busy, busy_task, "pre-deploy", 0, "", "", "", claim=pull.claim(busy_task)
    )
    shown = _recover(sdb, settings, pull)
    assert shown["status"] == "failed"
    # the busy host's next report is refused: its script removes its webroot link
    with pytest.raises(Conflict):
        agents.report(
            sdb,
            pull.space,
            busy,
            busy_task,
            "do-deploy",
            0,
            "",
            "",
            "",
            claim=pull.claim(busy_task),
        )
    told = agents.tasks_of(sdb, pull.id, "rollback")
    assert done in told or pull.live().get(done) != V2, (
        f"{done} stays on the failed first deploy's release; {busy} serves nothing"
    )


# --- the worker's deadline racing a host's last word ---------------------------------------


def test_a_success_taken_while_the_deadline_is_judged_is_not_overwritten(pdb, monkeypatch):
    """The worker's deadline and the host's last word: one wins, and the records agree with
    the answer the host got (taken: success everywhere; refused: unreachable, V1 live)."""
    import time
    from datetime import timedelta as real_timedelta

    pull = Pull(pdb)
    host = HOSTS[0]
    task = pull.fetch(host)
    pull.report(host, task, "pre-deploy")
    selected = threading.Event()

    def slow_timedelta(*args, **kwargs):  # the worker is descheduled right after its SELECT
        if not selected.is_set():
            selected.set()
            time.sleep(1.5)
        return real_timedelta(*args, **kwargs)

    monkeypatch.setattr(agents, "timedelta", slow_timedelta)
    judged: list[object] = []

    def worker_side() -> None:
        try:
            judged.append(agents.mark_unreachable(pdb, pull.id, 0.0, 0.0))
        except Exception as exc:  # SQLite may refuse the stale write instead
            judged.append(exc)

    worker = threading.Thread(target=worker_side)
    worker.start()
    assert selected.wait(10)
    try:
        pull.report(host, task, "post-deploy", "success")
        answer = "taken"  # the host keeps V2
    except Conflict:
        answer = "refused"  # the host switches back to V1
    worker.join(30)
    state = agents.tasks_of(pdb, pull.id)[host]
    shown = {h["host"]: h["status"] for h in deploy_views.get(pdb, pull.id)["hosts"]}
    if answer == "taken":
        assert (state.status, shown[host], pull.live()[host]) == ("success", "success", V2), judged
    else:
        assert (state.status, pull.live()[host]) == ("unreachable", V1), judged


# --- two deploys due on one host (two projects of one space on the same machine) ------------


def test_the_task_a_poll_announces_is_the_task_the_host_is_handed(pdb):
    first, second = Pull(pdb), Pull(pdb)  # two projects, both with HOSTS[0] due
    host = HOSTS[0]
    agents.index.forget()
    announced = agents.index.get(pdb, first.space, host)
    assert announced is not None
    handed = first.fetch(host)
    assert announced.task_id == handed, (
        f"the poll said task {announced.task_id} (deploy #{announced.deploy_id}); "
        f"the host was handed task {handed}"
    )
    pull = first if handed == agents.tasks_of(pdb, first.id)[host].id else second
    pull.report(host, handed, "pre-deploy")
    pull.report(host, handed, "post-deploy", "success")
    agents.index.forget()
    after = agents.index.get(pdb, first.space, host)
    # the poller's next If-None-Match is the ETag it stored: a 304 would be the end of it
    assert after is None or after.etag != announced.etag


# --- a host fetching its script while the deploy is cancelled -------------------------------


def test_a_task_cancelled_while_its_host_fetches_it_gets_no_go_ahead(pdb, monkeypatch):
    """A cancel committing while take() is between its read and its write is not lost."""
    pull = Pull(pdb)
    host = HOSTS[0]
    real_now = db_now
    selected, cancelled = threading.Event(), threading.Event()

    def slow_now(s):  # the server thread is descheduled right after its SELECT
        if not selected.is_set():
            selected.set()
            cancelled.wait(10)
        return real_now(s)

    monkeypatch.setattr(agents, "db_now", slow_now)
    handed: list[object] = []

    def server_side() -> None:
        try:
            handed.append(agents.take(pdb, pull.space, host))
        except Exception as exc:  # a refusal is fine (SQLite: the snapshot is stale)
            handed.append(exc)

    fetching = threading.Thread(target=server_side)
    fetching.start()
    assert selected.wait(10)
    agents.cancel_open(pdb, pull.id)  # the worker stops handing the deploy out
    cancelled.set()
    fetching.join(30)
    monkeypatch.setattr(agents, "db_now", real_now)
    task = agents.tasks_of(pdb, pull.id)[host]
    if isinstance(handed[0], tuple):  # the host got a script: its go-ahead must be refused
        with pytest.raises(Conflict):
            pull.report(host, task.id, "pre-deploy")
    assert agents.tasks_of(pdb, pull.id)[host].status == "cancelled"
    assert pull.live()[host] == V1


# --- a cancelled pull rollback --------------------------------------------------------------


def test_a_cancelled_pull_rollback_is_not_carried_out_later(sdb, settings):
    import asyncio
    import time

    from ferryman.jobs.deploy_job import run_deploy

    pull = Pull(sdb)
    deploy_records.record_releases(
        sdb, pull.project, "production", pull.id, "1111111", V1, HOSTS, "complete"
    )
    deploy_records.record_releases(
        sdb, pull.project, "production", pull.id, "2222222", V2, HOSTS, "complete"
    )
    deploy_records.set_live(sdb, pull.project, "production", pull.id, dict.fromkeys(HOSTS, V2))
    agents.cancel_open(sdb, pull.id)
    pull.end("success")
    back = deploys.request_rollback(sdb, ADMIN, pull.name, "production", V1)
    w = Claimer(sdb, "w")
    assert w.claim_next() == back.id
    ended: list[str] = []
    runner = threading.Thread(
        target=lambda: ended.append(
            asyncio.run(run_deploy(sdb, settings, back.id, w.holder(back.id)))
        )
    )
    runner.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(agents.tasks_of(sdb, back.id, "rollback")) < 3:
        time.sleep(0.2)
    time.sleep(0.5)
    deploys.request_cancel(sdb, ADMIN, back.id, "wrong release")
    runner.join(60)
    assert ended == ["cancelled"], ended
    states = {h: t.status for h, t in agents.tasks_of(sdb, back.id, "rollback").items()}
    agents.index.forget()
    host = sorted(states)[0]  # the runner's host key (no default port)
    later = agents.take(sdb, pull.space, host)  # the host polls an hour later
    assert later is None, f"a cancelled rollback is still handed out: {states}"
