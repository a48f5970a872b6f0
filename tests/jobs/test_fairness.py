"""Fair workers: rollbacks are claimed first, a space never runs more deploys than its limit
(even with two claimers at once, on every database), a worker keeps a slot for rollbacks, and
the space's limits belong to its owners (lower) and superusers (raise)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import case, func, select, update

from ferryman.bootstrap import prepare_home
from ferryman.config.project import parse_project
from ferryman.config.settings import Settings, load_settings
from ferryman.db.models import AuditEntry, Deploy, Project, Space
from ferryman.db.session import Database
from ferryman.errors import PermissionDenied, ValidationError
from ferryman.jobs.worker import Worker
from ferryman.keys import public_key
from ferryman.services import deploys, inventory, projects, queue, spaces, users
from ferryman.services.audit import SYSTEM, Actor
from ferryman.testing.fleet import Fleet
from tests.helpers import (
    ADMIN,
    Repo,
    apply,
    deploy,
    live,
    project_config,
    running_server,
    unique,
)

PASSWORD = "correct horse battery"


# --- the queue on every database ----------------------------------------------------------


def _migrated(db_url: str) -> Database:
    db = Database(db_url)
    db.upgrade()
    return db


def _space(db: Database, name: str, max_running: int = 2) -> None:
    spaces.create_space(db, SYSTEM, name)
    spaces.update_limits(db, SYSTEM, name, max_running=max_running)


def _project(db: Database, space: str, name: str) -> int:
    env = {"hosts": ["127.0.0.1:1"], "webroot": f"/srv/www/{name}", "releases": f"/srv/r/{name}"}
    config = {
        "project": name,
        "space": space,
        "repo": "ssh://git@127.0.0.1:1/fair.git",
        "environments": {"staging": env},
    }
    project, _ = projects.apply_project(db, SYSTEM, parse_project(config))
    return project.id


def _queue(db: Database, project_id: int, kind: str = "deploy", emergency: bool = False) -> int:
    """A job straight into the queue (one active deploy per environment is the services'
    rule, not the queue's), with the priority the services give its kind."""
    options = {"emergency": True} if emergency else {}
    with db.transaction() as s:
        row = Deploy(
            project_id=project_id,
            env="staging",
            kind=kind,
            ref="v1",
            config={},
            stages=[],
            variables={},
            options=options,
            priority=deploys.claim_priority(kind, options),
        )
        s.add(row)
        s.flush()
        return row.id


def _running_per_space(db: Database) -> dict[str, int]:
    with db.read() as s:
        rows = s.execute(
            select(Space.name, func.count(Deploy.id))
            .join(Project, Project.space_id == Space.id)
            .join(Deploy, Deploy.project_id == Project.id)
            .where(Deploy.status == "running")
            .group_by(Space.name)
        ).all()
    return {name: int(n) for name, n in rows}


def test_an_emergency_rollback_is_claimed_first_then_a_rollback_then_a_deploy(db_url: str):
    db = _migrated(db_url)
    _space(db, "acme", max_running=5)
    ordinary = _queue(db, _project(db, "acme", "site"))
    rollback = _queue(db, _project(db, "acme", "shop"), kind="rollback")
    emergency = _queue(db, _project(db, "acme", "blog"), kind="rollback", emergency=True)
    assert queue.claim_next(db, "w") == emergency
    assert queue.claim_next(db, "w") == rollback
    assert queue.claim_next(db, "w") == ordinary
    assert queue.claim_next(db, "w") is None
    db.dispose()


def _finish(db: Database, deploy_id: int) -> None:
    with db.transaction() as s:
        s.execute(update(Deploy).where(Deploy.id == deploy_id).values(status="success"))


def test_a_full_space_waits_while_other_spaces_and_its_own_rollbacks_go_ahead(db_url: str):
    db = _migrated(db_url)
    _space(db, "a", max_running=2)
    _space(db, "b", max_running=2)
    a_jobs = [_queue(db, _project(db, "a", f"a{i}")) for i in range(4)]
    b_job = _queue(db, _project(db, "b", "b0"))
    # A's two oldest; A is full, so B's goes before A's others; then nothing.
    assert [queue.claim_next(db, "w") for _ in range(4)] == [a_jobs[0], a_jobs[1], b_job, None]
    # A rollback of A is not held back by A's limit (and runs as one of A's deploys).
    a_rollback = _queue(db, _project(db, "a", "a-back"), kind="rollback")
    assert queue.claim_next(db, "w") == a_rollback
    assert _running_per_space(db) == {"a": 3, "b": 1}
    _finish(db, a_jobs[0])
    assert queue.claim_next(db, "w") is None  # a1 and the rollback: A is still at 2
    # The last free slot of a worker only takes rollbacks.
    late_rollback = _queue(db, _project(db, "b", "b-back"), kind="rollback")
    _finish(db, a_rollback)
    assert queue.claim_next(db, "w", rollbacks_only=True) == late_rollback
    assert queue.claim_next(db, "w", rollbacks_only=True) is None
    assert queue.claim_next(db, "w") == a_jobs[2]  # A has room for one again
    assert queue.claim_next(db, "w") is None
    # An owner lowering the limit holds the space back from then on.
    spaces.update_limits(db, SYSTEM, "a", max_running=1)
    _finish(db, a_jobs[1])
    assert queue.claim_next(db, "w") is None  # a2 still runs: A is at 1 of 1
    _finish(db, a_jobs[2])
    assert queue.claim_next(db, "w") == a_jobs[3]
    db.dispose()


TRIALS = 150


def test_two_claimers_at_once_never_run_more_deploys_of_a_space_than_its_limit(db_url: str):
    """Two claimers (each its own engine and connections) race from a barrier, claiming
    until nothing is left, from a random number of deploys already running. Afterwards each
    space runs exactly its limit: never more (the race), never fewer (nobody starved)."""
    db = _migrated(db_url)
    limits = {"one": 1, "two": 2, "three": 3}
    jobs: dict[str, list[int]] = {}
    for name, limit in limits.items():
        _space(db, name, max_running=limit)
        jobs[name] = [_queue(db, _project(db, name, f"{name}{i}")) for i in range(limit + 3)]
    claimers = [Database(db_url) for _ in range(2)]
    rng = random.Random(14)
    errors: list[BaseException] = []
    over: list[tuple[int, dict[str, int]]] = []

    def claim_all(claimer: Database, name: str, barrier: threading.Barrier) -> None:
        try:
            barrier.wait(10)
            while queue.claim_next(claimer, name) is not None:
                pass
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    everyone = [job for ids in jobs.values() for job in ids]
    for trial in range(TRIALS):
        running_before: list[int] = []
        for name, ids in jobs.items():
            already = rng.randrange(limits[name])  # deploys running before the race
            running_before += ids[:already]
        with db.transaction() as s:  # one statement: the trials are many, each one cheap
            s.execute(
                update(Deploy)
                .where(Deploy.id.in_(everyone))
                .values(
                    status=case((Deploy.id.in_(running_before), "running"), else_="queued"),
                    worker="",
                )
            )
        barrier = threading.Barrier(2)
        threads = [
            threading.Thread(target=claim_all, args=(c, f"w{i}", barrier))
            for i, c in enumerate(claimers)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        running = _running_per_space(db)
        if running != limits:
            over.append((trial, running))
    for claimer in claimers:
        claimer.dispose()
    db.dispose()
    assert not over, f"{len(over)} of {TRIALS} trials broke a limit {limits}: {over[:5]}"


# --- the limits: owners lower, superusers raise -------------------------------------------


def _team(db: Database) -> dict[str, Actor]:
    spaces.create_space(db, SYSTEM, "acme")
    team = {}
    for role in ("owner", "master", "super"):
        actor = users.create_user(db, f"{role}-user", PASSWORD, superuser=role == "super")
        if role != "super":
            spaces.set_member(db, SYSTEM, "acme", actor.username, role)
        team[role] = actor
    return team


def _limit_audits(db: Database) -> list[AuditEntry]:
    with db.read() as s:
        return list(
            s.scalars(
                select(AuditEntry)
                .where(AuditEntry.action == "space.limits")
                .order_by(AuditEntry.id)
            )
        )


def test_an_owner_lowers_limits_but_only_a_superuser_raises_them_or_allows_local_repos(
    db_url: str,
):
    db = _migrated(db_url)
    team = _team(db)
    owner, master, superuser = team["owner"], team["master"], team["super"]
    assert spaces.get_space(db, owner, "acme")["max_running"] == 2

    lowered = spaces.update_limits(db, owner, "acme", max_running=1, max_task_timeout="30m")
    assert lowered["max_running"] == 1 and lowered["max_task_timeout"] == 1800
    with pytest.raises(PermissionDenied, match="only a superuser may raise max_running"):
        spaces.update_limits(db, owner, "acme", max_running=3)
    with pytest.raises(PermissionDenied, match="raise max_task_timeout from 1800s to 3600s"):
        spaces.update_limits(db, owner, "acme", max_task_timeout="1h")
    with pytest.raises(PermissionDenied, match="allow local repositories"):
        spaces.update_limits(db, owner, "acme", allow_local_repos=True)
    with pytest.raises(PermissionDenied, match="owner role"):
        spaces.update_limits(db, master, "acme", max_running=1)
    with pytest.raises(ValidationError, match="max_running"):
        spaces.update_limits(db, owner, "acme", max_running=0)
    with pytest.raises(ValidationError, match="max_task_timeout"):
        spaces.update_limits(db, owner, "acme", max_task_timeout="0s")
    with pytest.raises(ValidationError, match="not a duration"):
        spaces.update_limits(db, owner, "acme", max_task_timeout="soon")
    # A refused change changes nothing, not even the part that was allowed.
    with pytest.raises(PermissionDenied):
        spaces.update_limits(db, owner, "acme", max_running=1, max_task_timeout="2h")
    assert spaces.get_space(db, owner, "acme")["max_task_timeout"] == 1800

    raised = spaces.update_limits(
        db, superuser, "acme", max_running=4, max_task_timeout=7200, allow_local_repos=True
    )
    assert {k: raised[k] for k in ("max_running", "max_task_timeout", "allow_local_repos")} == {
        "max_running": 4,
        "max_task_timeout": 7200,
        "allow_local_repos": True,
    }
    audits = _limit_audits(db)
    assert [a.actor for a in audits] == ["owner-user", "super-user"]
    assert audits[0].detail["before"]["max_running"] == 2
    assert audits[0].detail["after"] == {
        "max_running": 1,
        "max_task_timeout": 1800.0,
        "allow_local_repos": False,
    }
    assert audits[1].detail["after"]["allow_local_repos"] is True
    db.dispose()


@pytest.fixture
def home(db_url: str, tmp_path: Path) -> Iterator[tuple[Settings, Database]]:
    settings = load_settings(
        {"FERRYMAN_HOME": str(tmp_path / "home"), "FERRYMAN_DATABASE_URL": db_url}
    )
    db = prepare_home(settings)
    yield settings, db
    db.dispose()


def test_the_limits_api_lets_owners_lower_and_refuses_them_raising(home):
    settings, db = home
    from ferryman.app import create_app

    team = _team(db)
    tokens = {
        r: users.create_token(db, a, "t", ["read", "write"])["token"] for r, a in team.items()
    }
    with TestClient(create_app(settings, db, embedded_worker=False)) as client:

        def patch(who: str, body: dict[str, Any]) -> Any:
            headers = {"Authorization": f"Bearer {tokens[who]}"}
            return client.patch("/api/v1/spaces/acme/limits", json=body, headers=headers)

        r = patch("owner", {"max_running": 1, "max_task_timeout": "45m"})
        assert r.status_code == 200, r.text
        assert r.json()["max_running"] == 1 and r.json()["max_task_timeout"] == 2700
        r = patch("owner", {"max_running": 2})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        assert "only a superuser" in r.json()["error"]["message"]
        assert patch("owner", {"allow_local_repos": True}).status_code == 403
        assert patch("master", {"max_running": 1}).status_code == 403
        for bad in ({"max_running": 0}, {"max_task_timeout": "1 week"}, {"x": 1}):
            r = patch("owner", bad)
            assert r.status_code == 422, (bad, r.text)
        r = patch("super", {"max_running": 6, "allow_local_repos": True})
        assert r.status_code == 200, r.text
        shown = client.get(
            "/api/v1/spaces/acme", headers={"Authorization": f"Bearer {tokens['owner']}"}
        ).json()
        assert (shown["max_running"], shown["max_task_timeout"], shown["allow_local_repos"]) == (
            6,
            2700,
            True,
        )
    assert len(_limit_audits(db)) == 2


def _cli(home_dir: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FERRYMAN_HOME": str(home_dir), "XDG_CONFIG_HOME": str(config)}
    env.pop("FERRYMAN_URL", None)
    env.pop("FERRYMAN_TOKEN", None)
    exe = shutil.which("ferryman", path=os.path.dirname(sys.executable)) or "ferryman"
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=60)


def test_space_limits_from_the_cli_print_the_limits_and_exit_nonzero_when_refused(
    tmp_path: Path,
):
    settings = load_settings({"FERRYMAN_HOME": str(tmp_path / "home")})
    db = prepare_home(settings)
    _team(db)
    db.dispose()
    with running_server(settings.home) as url:
        owner, boss = tmp_path / "owner", tmp_path / "super"
        for user, config in (("owner-user", owner), ("super-user", boss)):
            login = ("login", "--server", url, "--username", user, "--password", PASSWORD)
            assert _cli(settings.home, config, *login).returncode == 0
        shown = _cli(settings.home, owner, "space", "limits", "acme")
        assert shown.returncode == 0, shown.stderr
        assert "at most 2 running" in shown.stdout and "3600s" in shown.stdout
        lowered = _cli(settings.home, owner, "space", "limits", "acme", "--max-running", "1")
        assert lowered.returncode == 0, lowered.stderr
        assert "at most 1 running" in lowered.stdout
        refused = _cli(settings.home, owner, "space", "limits", "acme", "--max-running", "5")
        assert refused.returncode == PermissionDenied.exit_code != 0
        assert "only a superuser may raise max_running from 1 to 5" in refused.stderr
        bad = _cli(settings.home, owner, "space", "limits", "acme", "--max-task-timeout", "soon")
        assert bad.returncode == 2 and "not a duration" in bad.stderr
        raised = _cli(
            settings.home,
            boss,
            "space",
            "limits",
            "acme",
            "--max-running",
            "5",
            "--max-task-timeout",
            "2h",
            "--allow-local-repos",
        )
        assert raised.returncode == 0, raised.stderr
        assert "at most 5 running, task timeout up to 7200s, local repositories allowed" in (
            " ".join(raised.stdout.split())
        )


# --- the attack on the real fleet -----------------------------------------------------------


@contextlib.contextmanager
def authorized(fleet: Fleet, key: str) -> Iterator[None]:
    """``key`` (a space's public key) may log in as root on every fleet host meanwhile."""
    path = fleet.base / "authorized_keys"
    before = path.read_text()
    path.write_text(before.rstrip("\n") + "\n" + key + "\n")
    try:
        yield
    finally:
        path.write_text(before)


def _statuses(db: Database, ids: list[int]) -> dict[int, str]:
    with db.read() as s:
        return dict(s.execute(select(Deploy.id, Deploy.status).where(Deploy.id.in_(ids))).all())


def _started(db: Database, deploy_id: int) -> Any:
    with db.read() as s:
        return s.scalar(select(Deploy.started_at).where(Deploy.id == deploy_id))


@contextlib.contextmanager
def running_worker(settings: Settings, db: Database, concurrency: int) -> Iterator[Worker]:
    """A real ``Worker`` on its own event loop in a thread; drained (grace 60 s) at the end."""
    loop = asyncio.new_event_loop()
    worker = Worker(db, settings, concurrency=concurrency)
    # the loop outlives run(): run() returns as soon as stop() has begun, and stop() still
    # waits for the running deploys (as `ferryman worker` awaits both)
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    running = asyncio.run_coroutine_threadsafe(worker.run(), loop)
    try:
        yield worker
    finally:
        asyncio.run_coroutine_threadsafe(worker.stop(grace=60), loop).result(120)
        running.result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(60)
        loop.close()


def _wait(what: str, seconds: float, done: Any) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.fleet
def test_four_slow_deploys_of_one_space_neither_starve_another_space_nor_hold_up_a_rollback(
    db, settings, fleet, git_host, targets, tmp_path
):
    """Issue 14, attack 6, on a worker of concurrency 4: space A queues four deploys whose
    hooks sleep 20 s, then space B two (one slow). A runs two at a time and B's slow one
    starts beside them; the worker's last slot stays free for rollbacks (B's second waits);
    a rollback of A, asked for last, is claimed at once, before A's and B's waiting ones."""
    settings = load_settings(
        {
            "FERRYMAN_HOME": str(settings.home),
            "FERRYMAN_LOCK_LEASE": "30",
            "FERRYMAN_WORKER_POLL": "0.2",
            "FERRYMAN_SANDBOX_UID_BASE": str(settings.sandbox_uid_base),  # this worker's uids
        }
    )
    repo = Repo(git_host, tmp_path, unique("fair"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    a_host, back_host, b_host = targets[0], targets[1], targets[3]
    back = unique("back")  # A's project that will be rolled back
    apply(db, project_config(back, repo.url, [back_host]))
    first = deploy(db, settings, back, "v1")
    assert first["status"] == "success", first["error"]
    repo.commit({"index.html": "v2\n"}, tag="v2")
    assert deploy(db, settings, back, "v2")["status"] == "success"

    slow = {"pre_release": "sleep 20\n"}  # a target hook: the deploy host's are sandboxed
    a_names = [unique("slow") for _ in range(4)]
    for name in a_names:
        apply(db, project_config(name, repo.url, [a_host], tasks=slow))
    beta_id = spaces.create_space(db, SYSTEM, "beta")["id"]
    for env in inventory.list_environments(db, SYSTEM, "beta"):
        if env["name"] == "production":
            inventory.update_environment(db, SYSTEM, env["id"], requires_approval=False)
    inventory.create_server(db, SYSTEM, "beta", "b1", b_host.address, user="root")
    b_names = [unique("beta"), unique("beta")]
    for name, tasks in zip(b_names, (slow, {}), strict=True):
        config = project_config(name, repo.url, [], servers=["b1"], tasks=tasks)
        apply(db, {**config, "space": "beta"})

    a_jobs = [deploys.request_deploy(db, ADMIN, n, "production", "v1").id for n in a_names]
    b_jobs = [deploys.request_deploy(db, ADMIN, n, "production", "v1").id for n in b_names]
    everything = [*a_jobs, *b_jobs]
    most_of_a = 0

    def watch() -> dict[int, str]:
        nonlocal most_of_a
        state = _statuses(db, everything)
        most_of_a = max(most_of_a, [state[i] for i in a_jobs].count("running"))
        return state

    beta_key = public_key(settings, beta_id, False)  # each space logs in with its own key
    with authorized(fleet, beta_key), running_worker(settings, db, concurrency=4):
        _wait("B's slow deploy to start", 30, lambda: watch()[b_jobs[0]] == "running")
        time.sleep(1.5)  # seven polls of the worker: time to claim what it may
        state = watch()
        assert [state[i] for i in everything] == [
            *("running", "running", "queued", "queued"),  # A at its limit of 2
            *("running", "queued"),  # B has room, but the worker's last slot is kept
        ]
        rollback = deploys.request_rollback(db, ADMIN, back, "production").id
        _wait("the rollback to be claimed", 10, lambda: _started(db, rollback) is not None)
        state = watch()
        assert [state[i] for i in (a_jobs[2], a_jobs[3], b_jobs[1])] == ["queued"] * 3
        _wait("every deploy to end", 120, lambda: "queued" not in watch().values())
        _wait("every deploy to end", 60, lambda: "running" not in watch().values())

    assert most_of_a == 2  # A never ran more than its limit
    assert set(_statuses(db, [*everything, rollback]).values()) == {"success"}
    assert live(back_host, back) == first["release"]  # the rollback did its work
    later = [_started(db, i) for i in (a_jobs[2], a_jobs[3], b_jobs[1])]
    assert _started(db, rollback) < min(later)
