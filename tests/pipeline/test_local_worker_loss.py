"""A worker killed with SIGKILL mid-deploy to a local target (``hosts: [local]``): another
worker takes the deploy over within the lease, puts the deploy host — the one "host" — back on
its complete previous release, removes the new one, stops the dead worker's hook and releases
the lock; the next deploy goes through. As ``tests/jobs/test_worker_loss.py`` shows for SSH
hosts, with the local executor and its sandbox instead."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from ferryman.db.models import HostState, Lock
from ferryman.services import deploy_views, deploys
from tests.helpers import ADMIN, allow_local_repos, apply, deploy, unique
from tests.jobs.test_worker_loss import LEASE, _rescue, _wait, _worker
from tests.pipeline.test_local_target import LocalRepo, _config, _grant, _live

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="local targets run as a uid of their own")
HOOK = 8  # seconds the dead worker's hook sleeps before it leaves its marker


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "www").mkdir(parents=True)
    (root / "releases").mkdir()
    return root


def _releases(site: Path) -> list[str]:
    return sorted(p.name for p in (site / "releases").iterdir() if not p.name.startswith("."))


def test_a_killed_workers_local_deploy_is_recovered_and_the_deploy_host_goes_back(
    db, settings, tmp_path, site
):
    allow_local_repos(db)
    repo, name = LocalRepo(tmp_path), unique("local")
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, _config(name, repo, site))
    _grant(db, settings, name, site / "www", site / "releases")
    first = deploy(db, settings, name, "v1")
    assert first["status"] == "success", first.get("error")
    slow = {
        "post_release": f'touch "$RELEASES/.hook.started"\nsleep {HOOK}\n'
        'touch "$RELEASES/.hook.finished"\n'
    }
    apply(db, _config(name, repo, site, tasks=slow))
    repo.commit({"index.html": "v2\n"}, tag="v2")
    doomed = deploys.request_deploy(db, ADMIN, name, "production", "v2")

    victim = _worker(settings)
    try:

        def switched() -> bool:
            release = deploy_views.get(db, doomed.id)["release"]
            return bool(release) and _live(site) == release

        _wait(switched, 60, "the deploy host to switch to v2")
        _wait((site / "releases" / ".hook.started").exists, 30, "the hook")
        new_release = deploy_views.get(db, doomed.id)["release"]
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        killed_at = time.monotonic()
        _rescue(db, settings, doomed.id, float(LEASE) * 4 + 20, "the deploy to be taken over")
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait(10)

    result = deploy_views.get(db, doomed.id)
    assert result["status"] == "failed" and result["error"]["code"] == "worker_lost", result
    assert _live(site) == first["release"]
    assert (site / "www" / "current" / "index.html").read_text() == "v1\n"
    assert _releases(site) == [first["release"]]  # v2 removed, nothing partial
    assert new_release not in _releases(site)
    with db.read() as s:
        assert s.query(Lock).count() == 0
        states = {row.host: row.current_release for row in s.query(HostState).all()}
    assert states.get("local") == first["release"], states
    # the dead worker's hook was stopped with it, not left to run on the deploy host
    time.sleep(max(0.0, killed_at + HOOK + 2 - time.monotonic()))
    assert not (site / "releases" / ".hook.finished").exists()

    apply(db, _config(name, repo, site))
    again = deploy(db, settings, name, "v2")
    assert again["status"] == "success", again.get("error")
    assert (site / "www" / "current" / "index.html").read_text() == "v2\n"
