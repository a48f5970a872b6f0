"""Session 13 fault review: a worker killed, with what it runs, while its checkout fetches.

The checkout first brings the project's cached mirror up to date (``vcs/git.GitRepo.update``:
``git remote set-url`` then ``git fetch --prune`` in the mirror, under a flock). Git updates
refs behind lock files (``refs/heads/master.lock``, ``packed-refs.lock``, ``config.lock``)
that only a git that ends normally removes. A worker whose whole process tree is SIGKILLed
in that moment — systemd killing what is left of the unit once its main process is gone, an
OOM kill of the unit, a machine that loses power — leaves them in the mirror. The flock goes
with the process; the lock files stay, and every later ``git fetch`` there fails ("cannot lock
ref ... File exists"): every deploy of the project fails at its checkout, on every
environment, until someone removes the file by hand. Nothing in the checkout, the recovery
or the worker's start (``housekeeping.sweep_workspaces``) clears them or falls back to a
fresh mirror. Now the update removes them while it holds the mirror's flock, and runs git's
automatic gc in the foreground so that no git writes there once it lets go.

Git is held in the middle of its ref update by a ``reference-transaction`` hook (test
instrumentation, removed after the kill): at ``prepared`` git holds the ref locks.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest

from ferryman.services import deploy_views, deploys
from ferryman.testing.fleet import _descendants
from ferryman.vcs.factory import mirror_path
from tests.helpers import ADMIN, Repo, apply, deploy, live, project_config, unique
from tests.jobs.claiming import rescue
from tests.jobs.test_worker_loss import LEASE, _wait

pytestmark = pytest.mark.fleet

HOOK = """#!/bin/sh
if [ "$1" = prepared ]; then touch "{marker}"; sleep 60; fi
exit 0
"""


def _worker(settings) -> subprocess.Popen[bytes]:
    exe = shutil.which("ferryman", path=os.path.dirname(sys.executable)) or "ferryman"
    env = {
        **os.environ,
        "FERRYMAN_HOME": str(settings.home),
        "FERRYMAN_LOCK_LEASE": LEASE,
        "FERRYMAN_WORKER_POLL": "0.1",
    }
    return subprocess.Popen([exe, "worker"], env=env, stderr=subprocess.DEVNULL)


def test_a_fetch_killed_with_its_worker_does_not_fail_every_later_deploy_of_the_project(
    db, settings, git_host, targets, tmp_path
):
    hosts = targets[:2]
    repo = Repo(git_host, tmp_path, unique("mirrorkill"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, hosts))
    v1 = deploy(db, settings, repo.name, "v1")
    assert v1["status"] == "success", v1["error"]
    mirror = mirror_path(settings.repo_cache, repo.url, 1)  # the default space's
    assert (mirror / "HEAD").exists()
    marker = tmp_path / "fetch-holds-its-ref-locks"
    hook = mirror / "hooks" / "reference-transaction"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(HOOK.format(marker=marker))
    hook.chmod(0o755)
    repo.commit({"index.html": "v2\n"}, tag="v2")
    doomed = deploys.request_deploy(db, ADMIN, repo.name, "production", "v2")

    victim = _worker(settings)
    try:
        _wait(marker.exists, 60, "the checkout's fetch to update the mirror's refs")
        tree = [victim.pid, *_descendants(victim.pid)]
        for pid in tree:  # the worker and everything it runs, at once
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        victim.wait(10)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait(10)
    hook.unlink()  # the instrumentation goes; what the dead git left stays
    left = sorted(str(p.relative_to(mirror)) for p in mirror.rglob("*.lock"))
    assert "refs/heads/master.lock" in left, left

    rescue(db, settings, doomed.id, float(LEASE))
    assert deploy_views.get(db, doomed.id)["status"] == "failed"
    assert {live(h, repo.name) for h in hosts} == {v1["release"]}

    again = deploy(db, settings, repo.name, "v2")

    assert again["status"] == "success", again["error"]
    assert {live(h, repo.name) for h in hosts} == {again["release"]}
    assert all(
        h.path(f"/srv/releases/{repo.name}/{again['release']}/index.html").read_text() == "v2\n"
        for h in hosts
    )
