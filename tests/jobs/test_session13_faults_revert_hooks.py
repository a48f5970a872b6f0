"""Session 13 fault review: ``post_release_on_revert`` and a worker killed after its switch.

With ``post_release_on_revert: true`` a project says its hosts need ``post_release`` run again
in the release they are switched back to (a PHP-FPM reload or an opcache reset: without it
the host keeps serving the new release's code through the old link). A run that fails after
its switch does so (``release.revert``). A run SIGKILLed in ``post_release`` is put back by
another worker (``pipeline/recover.py``), which only relinked: the hosts were recorded
``reverted`` to the old release while what they ran was last (re)started in the new one.
The recovery now runs ``post_release`` again too (``recover._post_release_again``).
"""

from __future__ import annotations

import signal

import pytest
from sqlalchemy import select

from ferryman.db.models import DeployHost
from ferryman.services import deploy_views, deploys
from tests.helpers import ADMIN, Repo, apply, deploy, live, project_config, unique
from tests.jobs.claiming import rescue
from tests.jobs.test_worker_loss import LEASE, _wait, _worker

pytestmark = pytest.mark.fleet

# the "reload": which release the host's app server was last started in
RELOAD = 'basename "$PWD" > /srv/{PROJECT}.serving\nif [ -f slow ]; then sleep 60; fi\n'


def test_a_deploy_killed_in_post_release_is_reverted_with_its_post_release_on_revert(
    db, settings, git_host, targets, tmp_path
):
    hosts = targets[:2]
    repo = Repo(git_host, tmp_path, unique("onrevert"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    config = project_config(
        repo.name,
        repo.url,
        hosts,
        tasks={"post_release": RELOAD},
        post_release_on_revert=True,
    )
    apply(db, config)
    v1 = deploy(db, settings, repo.name, "v1")["release"]
    serving = [h.path(f"/srv/{repo.name}.serving") for h in hosts]
    assert {p.read_text().strip() for p in serving} == {v1}
    repo.commit({"index.html": "v2\n", "slow": ""}, tag="v2")
    doomed = deploys.request_deploy(db, ADMIN, repo.name, "production", "v2")
    victim = _worker(settings)
    try:

        def reloaded_in_v2() -> bool:
            new = deploy_views.get(db, doomed.id)["release"]
            return bool(new) and all(p.exists() and p.read_text().strip() == new for p in serving)

        _wait(reloaded_in_v2, 60, "v2's post_release on every host")
        # its post_release stage is on record (a kill before that flush, or in the switch:
        # test_session13_faults_revert_hooks_stage.py)
        _wait(
            lambda: any(
                st["name"] == "post_release" for st in deploy_views.get(db, doomed.id)["stages"]
            ),
            10,
            "post_release on record",
        )
        v2 = deploy_views.get(db, doomed.id)["release"]
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait(10)
    rescue(db, settings, doomed.id, float(LEASE))

    result = deploy_views.get(db, doomed.id)
    assert result["status"] == "failed" and result["error"]["code"] == "worker_lost"
    assert {live(h, repo.name) for h in hosts} == {v1}
    with db.read() as s:
        rows = set(s.scalars(select(DeployHost.status).where(DeployHost.deploy_id == doomed.id)))
    assert rows == {"reverted"}
    # what the hosts run was started again in v1, as a failed run's revert would have done
    assert {h.address: p.read_text().strip() for h, p in zip(hosts, serving, strict=True)} == {
        h.address: v1 for h in hosts
    }, v2
