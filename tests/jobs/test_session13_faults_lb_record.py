"""Session 13 fault review: the record of a recovered gray release says its hosts were not put
back into the load balancer — and they were.

The recovery puts the hosts a dead run had taken out of the pool back in
(``pipeline/recover._back_into_load_balancer`` → ``rollout.lb_in_again``). ``lb_in_again`` runs
``lb_in`` through ``rollout._each``, which records each host's progress in a recorder stage
named ``lb_in`` that the recovery never opens (``recorder.stage_host`` → ``_stage``). When the
dead run's record holds no ``lb_in`` stage — it died before any batch reached its ``lb_in``,
the very case the recovery is for — every ``lb_in`` that succeeded is then counted failed
(``KeyError: 'lb_in'``), and the deploy's outcome names every host as "not in order: lb_in
failed", while the load balancer has them all back.

The worker is SIGKILLed in a batch's ``post_release``, every host out of the pool (the case
of ``tests/pipeline/test_rollout_worker_loss.py``, which checks the pool, not the record).
"""

from __future__ import annotations

import signal

import pytest
from sqlalchemy import select

from ferryman.db.models import DeployHost
from ferryman.services import deploy_views, deploys
from tests.helpers import ADMIN, Repo, apply, deploy, live, project_config, unique
from tests.jobs.test_worker_loss import LEASE, _rescue, _wait, _worker
from tests.pipeline.test_canary_lb import _held, balancer

pytestmark = pytest.mark.fleet
__all__ = ["balancer"]  # the fixture, used by name


def test_a_recovered_gray_release_records_its_hosts_back_in_the_pool_as_they_are(
    db, settings, git_host, targets, tmp_path, balancer
):
    lb, url = balancer
    hosts = targets[:3]
    repo = Repo(git_host, tmp_path, unique("lbrecord"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    config = project_config(repo.name, repo.url, hosts)
    apply(db, config)
    assert deploy(db, settings, repo.name, "v1")["status"] == "success"
    env = config["environments"]["production"]
    env["strategy"] = {
        "batches": "100%",
        "pause": "none",
        "lb_out": f"curl -fsS -m 5 -X POST {url}/out/$HOST",
        "lb_in": f"curl -fsS -m 5 -X POST {url}/in/$HOST",
    }
    env["tasks"] = {"post_release": "sleep 30"}
    apply(db, config)
    repo.commit({"index.html": "v2\n"}, tag="v2")
    requested = deploys.request_deploy(db, ADMIN, repo.name, "production", "v2")
    before = {h.address: live(h, repo.name) for h in hosts}

    victim = _worker(settings)
    try:
        _wait(
            lambda: (
                all(("out", h.address) in lb.events for h in hosts)
                and _held(db, requested.id)
                and all(live(h, repo.name) != before[h.address] for h in hosts)
            ),
            120,
            "every host taken out and switched",
        )
        _wait(
            lambda: any(
                st["name"] == "post_release" for st in deploy_views.get(db, requested.id)["stages"]
            ),
            60,
            "post_release",
        )
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        _rescue(db, settings, requested.id, float(LEASE) * 4 + 60, "the deploy to be taken over")
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait(10)

    ended = deploy_views.get(db, requested.id)
    assert ended["status"] == "failed" and ended["error"]["code"] == "worker_lost", ended
    assert {h.address: live(h, repo.name) for h in hosts} == before
    assert lb.members == {h.address for h in hosts}, lb.events  # all back in the pool
    # and the record says so: no host named as left out of it
    assert "lb_in failed" not in ended["error"]["message"], ended["error"]
    assert "not in order" not in ended["error"]["message"], ended["error"]
    with db.read() as s:
        rows = set(s.scalars(select(DeployHost.status).where(DeployHost.deploy_id == requested.id)))
    assert rows <= {"reverted", "unchanged"}, rows
