"""A worker killed with SIGKILL in the middle of a gray release whose load balancer is driven by
``lb_out``/``lb_in``: the recovery puts the hosts the dead run had taken out of the pool back on
their old release and then back into the pool — a held canary (``canary_lb:
out_until_continue``, killed during the timed pause) and a batch killed between its ``lb_out``
and its ``lb_in`` (in a slow ``post_release``). Before, the recovery switched them back and left
them out of the pool: a fleet serving with fewer hosts than it has, and nothing saying so.

The load balancer is the test's own HTTP server on loopback
(``tests/pipeline/test_canary_lb.py``)."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from ferryman.services import deploy_views, deploys
from tests.helpers import ADMIN, Repo, apply, deploy, live, project_config, unique
from tests.jobs.test_worker_loss import LEASE, _rescue, _wait, _worker
from tests.pipeline.test_canary_lb import _held, balancer

pytestmark = pytest.mark.fleet
__all__ = ["balancer"]  # the fixture, used by name

CASES: dict[str, dict[str, Any]] = {
    # the canary switched, checked and held out; the worker dies in the timed pause
    "held canary": {
        "strategy": {"canary": 1, "pause": "60s", "canary_lb": "out_until_continue"},
        "tasks": {},
    },
    # one batch of every host: the worker dies in post_release, every host out of the pool
    "batch in flight": {
        "strategy": {"pause": "none"},
        "tasks": {"post_release": "sleep 30"},
    },
}


def _started(db, deploy_id: int, text: str) -> bool:
    return any(text in line["text"] for line in deploy_views.logs_after(db, deploy_id, limit=5000))


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_killed_workers_gray_release_puts_its_hosts_back_into_the_load_balancer(
    db, settings, git_host, targets, tmp_path, balancer, case
):
    lb, url = balancer
    hosts = targets[:3]
    repo = Repo(git_host, tmp_path, unique("lbloss"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    config = project_config(repo.name, repo.url, hosts)
    apply(db, config)
    assert deploy(db, settings, repo.name, "v1")["status"] == "success"
    config["environments"]["production"]["strategy"] = {
        "batches": "100%",
        "lb_out": f"curl -fsS -m 5 -X POST {url}/out/$HOST",
        "lb_in": f"curl -fsS -m 5 -X POST {url}/in/$HOST",
        **CASES[case]["strategy"],
    }
    config["environments"]["production"]["tasks"] = CASES[case]["tasks"]
    apply(db, config)
    repo.commit({"index.html": "v2\n"}, tag="v2")
    requested = deploys.request_deploy(db, ADMIN, repo.name, "production", "v2")
    before = {h.address: live(h, repo.name) for h in hosts}
    taken_out = [hosts[0]] if case == "held canary" else hosts

    victim = _worker(settings)
    try:
        _wait(
            lambda: (
                all(("out", h.address) in lb.events for h in taken_out)
                and _held(db, requested.id)
                and all(live(h, repo.name) != before[h.address] for h in taken_out)
            ),
            120,
            "the hosts to be taken out and switched",
        )
        if case == "held canary":
            _wait(lambda: _started(db, requested.id, "waiting"), 60, "the timed pause")
        else:
            _wait(lambda: _started(db, requested.id, "post_release"), 60, "post_release")
        assert lb.members != {h.address for h in hosts}
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
    assert lb.members == {h.address for h in hosts}, lb.events
    for host in taken_out:  # back into the pool only once it is back on its old release
        last = max(i for i, e in enumerate(lb.events) if e[1] == host.address)
        assert lb.events[last] == ("in", host.address), lb.events
    assert _started(db, requested.id, "back into the load balancer")
