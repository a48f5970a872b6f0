"""Session 13 fault review: a rollback whose worker is SIGKILLed while it checks its target.

A rollback to a named release (``rollback --to``) hashes that release on every host against
its manifest before it switches anything (``pipeline/rollback.choose_targets``, stage
``verify``): a damaged release is never rolled back to. When the worker dies in that check,
the recovery (``pipeline/recover.py`` → ``domain/recovery.plan``) carries a rollback forward to
its target whenever the target is "complete" on every host — and "complete" there is only
"its ``.ferryman-manifest`` file exists" (the probe's ``release NAME SHA`` line), never the
hash check the rollback was in the middle of. So the hosts are switched to the damaged
release the rollback would have refused. The recovery now hashes the target first when the
dead run had not finished its check (``pipeline/recover._target_checked``).
"""

from __future__ import annotations

import signal
import time

import pytest

from ferryman.services import deploy_views, deploys
from tests.helpers import ADMIN, Repo, apply, deploy, live, project_config, unique
from tests.jobs.claiming import rescue
from tests.jobs.test_worker_loss import LEASE, _wait, _worker

pytestmark = pytest.mark.fleet


def _stage_running(db, deploy_id: int, name: str) -> bool:
    return any(
        s["name"] == name and s["status"] == "running"
        for s in deploy_views.get(db, deploy_id)["stages"]
    )


def test_a_rollback_killed_while_verifying_a_damaged_target_never_switches_hosts_to_it(
    db, settings, git_host, targets, tmp_path
):
    hosts = targets[:3]
    repo = Repo(git_host, tmp_path, unique("rbdmg"))
    repo.commit({"index.html": "v1\n", "app.php": "<?php one();\n"}, tag="v1")
    repo.commit({"index.html": "v2\n", "app.php": "<?php two();\n"}, tag="v2")
    apply(db, project_config(repo.name, repo.url, hosts))
    v1 = deploy(db, settings, repo.name, "v1")["release"]
    v2 = deploy(db, settings, repo.name, "v2")["release"]
    assert {live(h, repo.name) for h in hosts} == {v2}
    # v1 is damaged on one host: a file changed in place (here a big sparse one, so hashing
    # it takes seconds and the rollback's check is caught in the middle)
    damaged = hosts[0]
    app = damaged.path(f"/srv/releases/{repo.name}/{v1}/app.php")
    with open(app, "r+b") as fh:
        fh.truncate(6_000_000_000)
    assert (damaged.path(f"/srv/releases/{repo.name}/{v1}/.ferryman-manifest")).exists()

    back = deploys.request_rollback(db, ADMIN, repo.name, "production", to=v1)
    victim = _worker(settings)
    try:
        _wait(lambda: _stage_running(db, back.id, "verify"), 60, "the rollback's check of v1")
        time.sleep(0.5)
        assert _stage_running(db, back.id, "verify")  # still hashing the damaged file
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait(10)
    assert {live(h, repo.name) for h in hosts} == {v2}  # the dead run switched nothing

    rescue(db, settings, back.id, float(LEASE))

    result = deploy_views.get(db, back.id)
    assert result["status"] != "running"
    served = {h.address: live(h, repo.name) for h in hosts}
    # the one outcome that keeps the promise: no host on the damaged v1, one release for all
    assert served[damaged.address] != v1, (served, result["error"])
    assert set(served.values()) == {v2}, served
    recorded = deploy_views.live_releases(db, back.project_id, "production")
    assert recorded == {h.address: v2 for h in hosts}
