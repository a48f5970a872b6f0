"""A worker killed with SIGKILL mid-deploy on a real fleet: another worker takes the deploy
over within the lease, puts every host back on a complete release, releases the lock."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from ferryman.services import deploy_views, deploys
from tests.helpers import ADMIN, Repo, apply, deploy, live, project_config, release_dirs, unique

pytestmark = pytest.mark.fleet
LEASE = "4"


def _worker(settings, **extra: str) -> subprocess.Popen[bytes]:
    exe = shutil.which("ferryman", path=os.path.dirname(sys.executable)) or "ferryman"
    env = {
        **os.environ,
        "FERRYMAN_HOME": str(settings.home),
        "FERRYMAN_LOCK_LEASE": LEASE,
        "FERRYMAN_WORKER_POLL": "0.1",
        **extra,
    }
    return subprocess.Popen([exe, "worker"], env=env, stderr=subprocess.DEVNULL)


def _wait(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _rescue(db, settings, deploy_id: int, seconds: float, what: str) -> None:
    """Start a second worker, wait until it has taken ``deploy_id`` over (it no longer runs),
    then stop it."""
    rescuer = _worker(settings)
    try:
        _wait(lambda: deploy_views.get(db, deploy_id)["status"] != "running", seconds, what)
    finally:
        rescuer.send_signal(signal.SIGTERM)
        rescuer.wait(30)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_killed_worker_s_deploy_is_recovered_by_another_and_hosts_go_back(
    db, settings, git_host, targets, tmp_path
):
    repo = Repo(git_host, tmp_path, unique("kill"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, targets))
    first = deploy(db, settings, repo.name, "v1")
    slow = {"post_release": 'echo $$ > "$RELEASES/.hook.pid"\nsleep 60\n'}
    apply(db, project_config(repo.name, repo.url, targets, tasks=slow))
    repo.commit({"index.html": "v2\n"}, tag="v2")
    doomed = deploys.request_deploy(db, ADMIN, repo.name, "production", "v2")

    victim = _worker(settings)
    try:

        def switched() -> bool:
            release = deploy_views.get(db, doomed.id)["release"]
            return bool(release) and all(live(h, repo.name) == release for h in targets)

        _wait(switched, 60, "every host to switch to v2")
        pid_files = [h.path(f"/srv/releases/{repo.name}/.hook.pid") for h in targets]
        _wait(lambda: all(p.exists() and p.read_text().strip() for p in pid_files), 30, "hooks")
        hooks = [int(p.read_text()) for p in pid_files]
        new_release = deploy_views.get(db, doomed.id)["release"]
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        killed_at = time.monotonic()

        rescuer = _worker(settings)
        try:
            _wait(
                lambda: deploy_views.get(db, doomed.id)["status"] != "running",
                float(LEASE) * 4 + 20,
                "the deploy to be taken over",
            )
            took = time.monotonic() - killed_at
        finally:
            rescuer.send_signal(signal.SIGTERM)
            rescuer.wait(30)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait(10)

    result = deploy_views.get(db, doomed.id)
    assert result["status"] == "failed" and result["error"]["code"] == "worker_lost", result
    assert took < float(LEASE) * 3 + 10
    # the dead worker's hooks were stopped before the hosts were repaired, not left to run
    assert [_running(pid) for pid in hooks] == [False] * len(hooks)
    for host in targets:
        assert live(host, repo.name) == first["release"]
        assert release_dirs(host, repo.name) == [first["release"]]  # v2 removed, nothing partial
    assert new_release not in {r for h in targets for r in release_dirs(h, repo.name)}
    from ferryman.db.models import Lock

    with db.read() as s:
        assert s.query(Lock).count() == 0
    apply(db, project_config(repo.name, repo.url, targets))
    again = deploy(db, settings, repo.name, "v2")
    assert again["status"] == "success", again["error"]


@pytest.mark.parametrize(("grace", "outcome"), [("30", "success"), ("0.5", "cancelled")])
def test_sigterm_drains_a_worker_finishing_or_safely_stopping_its_deploy(
    db, settings, git_host, targets, tmp_path, grace, outcome
):
    repo = Repo(git_host, tmp_path, unique("drain"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, targets))
    first = deploy(db, settings, repo.name, "v1")
    apply(db, project_config(repo.name, repo.url, targets, tasks={"post_deploy": "sleep 2\n"}))
    repo.commit({"index.html": "v2\n"}, tag="v2")
    queued = deploys.request_deploy(db, ADMIN, repo.name, "production", "v2")
    worker = _worker(settings, FERRYMAN_DRAIN_GRACE=grace)
    try:
        _wait(
            lambda: any(
                s["name"] == "post_deploy" and s["status"] == "running"
                for s in deploy_views.get(db, queued.id)["stages"]
            ),
            30,
            "the build to start",
        )
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0  # it exits by itself once drained
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
    result = deploy_views.get(db, queued.id)
    assert result["status"] == outcome, result["error"]
    expected = result["release"] if outcome == "success" else first["release"]
    assert {live(h, repo.name) for h in targets} == {expected}
    if outcome == "cancelled":
        assert "shutting down" in result["error"]["message"]
        assert all(release_dirs(h, repo.name) == [first["release"]] for h in targets)
