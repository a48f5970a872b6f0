"""Database outages under a running deploy, on a real fleet and a private PostgreSQL that the
test stops and starts (the shared server is never touched): a short outage does not turn a
finished deploy into a failure; an outage longer than the lease, with the worker frozen, ends
in exactly one truthful outcome — the rescuer's — and the old run writes nothing over it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from ferryman.bootstrap import attach_key
from ferryman.db.models import DeployHost, Lock
from ferryman.db.session import Database
from ferryman.secretbox import SecretBox, load_key
from ferryman.services import deploy_views, deploys
from ferryman.testing.postgres import PrivatePostgres, unavailable
from tests.conftest import SERVICES, set_approval
from tests.helpers import ADMIN, Repo, apply, live, project_config, release_dirs, unique
from tests.jobs.test_worker_loss import _running, _wait, _worker

pytestmark = pytest.mark.fleet
PORT = 15440
HOST = SERVICES["jobs_postgres"]  # this xdist worker's own: apart from other test runs


@pytest.fixture(scope="module")
def server() -> Iterator[PrivatePostgres]:
    reason = unavailable()
    if reason:
        if os.environ.get("FERRYMAN_REQUIRE_DATABASES"):
            pytest.fail(reason)
        pytest.skip(reason)
    pg = PrivatePostgres(host=HOST)
    pg.start(PORT)
    try:
        yield pg
    finally:
        pg.remove()


@pytest.fixture
def pg(server: PrivatePostgres, settings) -> Iterator[tuple[Database, str]]:
    if not server.running():
        server.start()
    url = server.create_database(unique("outage").replace("-", "_"))
    db = Database(url)
    db.upgrade()
    attach_key(db, SecretBox(load_key(settings.home)))
    set_approval(db, "production", False)
    try:
        yield db, url
    finally:
        db.dispose()


def _hook_pids(targets, name: str) -> list[int]:
    files = [h.path(f"/srv/releases/{name}/.hook.pid") for h in targets]
    _wait(lambda: all(f.exists() and f.read_text().strip() for f in files), 60, "every hook")
    return [int(f.read_text()) for f in files]


def _ended(db: Database, deploy_id: int) -> bool:
    try:
        return deploy_views.get(db, deploy_id)["status"] not in ("queued", "running")
    except Exception:  # the database is still coming back
        return False


def _locks(db: Database) -> int:
    with db.read() as s:
        return s.query(Lock).count()


def test_a_database_outage_shorter_than_the_lease_does_not_fail_a_deploy(
    pg, server, settings, git_host, targets, tmp_path
):
    db, url = pg
    repo = Repo(git_host, tmp_path, unique("dbout"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    repo.commit({"index.html": "v2\n"}, tag="v2")
    apply(db, project_config(repo.name, repo.url, targets))
    # v1 by a worker of its own: the deploy itself needs no outage
    worker = _worker(settings, FERRYMAN_DATABASE_URL=url, FERRYMAN_LOCK_LEASE="30")
    try:
        first = deploys.request_deploy(db, ADMIN, repo.name, "production", "v1")
        _wait(lambda: _ended(db, first.id), 60, "v1")
        hook = {"post_release": 'echo $$ > "$RELEASES/.hook.pid"\nsleep 3\n'}
        apply(db, project_config(repo.name, repo.url, targets, tasks=hook))
        second = deploys.request_deploy(db, ADMIN, repo.name, "production", "v2")
        _hook_pids(targets, repo.name)
        server.stop()  # the hooks end, switches are recorded, cleanup runs: all in the dark
        time.sleep(8)
        server.start()
        _wait(lambda: _ended(db, second.id), 90, "v2 to end")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)

    result = deploy_views.get(db, second.id)
    assert result["status"] == "success", result["error"]
    assert {live(h, repo.name) for h in targets} == {result["release"]}
    assert {h["status"] for h in result["hosts"]} == {"success"}
    assert _locks(db) == 0


def test_an_outage_longer_than_the_lease_ends_in_one_outcome_and_a_whole_fleet(
    pg, server, settings, git_host, targets, tmp_path
):
    db, url = pg
    repo = Repo(git_host, tmp_path, unique("dbout"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    repo.commit({"index.html": "v2\n"}, tag="v2")
    apply(db, project_config(repo.name, repo.url, targets))
    env = {"FERRYMAN_DATABASE_URL": url, "FERRYMAN_LOCK_LEASE": "4"}
    original = _worker(settings, **env)
    rescuer: subprocess.Popen[bytes] | None = None
    try:
        first = deploys.request_deploy(db, ADMIN, repo.name, "production", "v1")
        _wait(lambda: _ended(db, first.id), 60, "v1")
        v1 = deploy_views.get(db, first.id)["release"]
        hook = {"post_release": 'echo $$ > "$RELEASES/.hook.pid"\nsleep 60\n'}
        apply(db, project_config(repo.name, repo.url, targets, tasks=hook))
        doomed = deploys.request_deploy(db, ADMIN, repo.name, "production", "v2")
        hooks = _hook_pids(targets, repo.name)
        original.send_signal(signal.SIGSTOP)  # it cannot race the rescuer when it comes back
        server.stop()
        time.sleep(6)  # longer than the lease
        server.start()
        rescuer = _worker(settings, **env)
        _wait(lambda: _ended(db, doomed.id), 60, "the rescuer to end the deploy")
        taken = deploy_views.get(db, doomed.id)
        original.send_signal(signal.SIGCONT)  # it wakes up in a deploy that is not its own
        time.sleep(3)
        original.send_signal(signal.SIGTERM)
        original.wait(60)
    finally:
        for proc in (original, rescuer):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)

    result = deploy_views.get(db, doomed.id)
    assert result["status"] == "failed" and result["error"]["code"] == "worker_lost"
    assert result["finished_at"] == taken["finished_at"]  # nothing written over it
    assert result["error"] == taken["error"]
    for host in targets:
        assert live(host, repo.name) == v1
        assert release_dirs(host, repo.name) == [v1]
    assert [_running(pid) for pid in hooks] == [False] * len(hooks)
    with db.read() as s:
        rows = s.scalars(select(DeployHost.status).where(DeployHost.deploy_id == doomed.id))
        assert "running" not in set(rows)
    assert _locks(db) == 0
    assert deploys.request_deploy(db, ADMIN, repo.name, "production", "v2").status == "queued"
