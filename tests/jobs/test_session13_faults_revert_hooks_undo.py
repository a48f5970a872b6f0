"""Session 13 fault review: ``post_release_on_revert`` and a worker killed in its own undo.

The recovery now runs ``post_release`` again where it switches a host back
(``pipeline/recover._post_release_again``: the hosts of ``decided.switch``). A run that failed
after its switch puts its hosts back itself (``release.revert``): it relinks every switched
host first, then runs ``post_release`` in the old release host by host. Killed between the
two, it leaves hosts whose links are back on the old release while what they run was last
(re)started in the new one. The recovery finds every link already where it was before the
deploy, switches nothing — and so runs no ``post_release`` anywhere: hosts recorded
``reverted`` keep running the new release's code.
"""

from __future__ import annotations

import signal

import pytest

from ferryman.services import deploy_views, deploys
from tests.helpers import ADMIN, Repo, apply, deploy, live, project_config, unique
from tests.jobs.claiming import rescue
from tests.jobs.test_worker_loss import LEASE, _wait, _worker

pytestmark = pytest.mark.fleet

# the "reload": which release the host's app server was last started in. v1's tree holds
# ``hold_here``: its reload waits while the test holds it (the run's undo is caught there);
# v2's fails on the host that has /srv/{PROJECT}.fail, after its reload
RELOAD = """if [ -f hold_here ] && [ -e /srv/{PROJECT}.hold ]; then
  touch /srv/{PROJECT}.reverting; sleep 30
fi
basename "$PWD" > /srv/{PROJECT}.serving
if [ ! -f hold_here ] && [ -e /srv/{PROJECT}.fail ]; then exit 3; fi
"""


def test_a_run_killed_in_its_own_revert_leaves_no_host_running_the_new_release(
    db, settings, git_host, targets, tmp_path
):
    hosts = targets[:3]
    repo = Repo(git_host, tmp_path, unique("undoreload"))
    repo.commit({"index.html": "v1\n", "hold_here": ""}, tag="v1")
    config = project_config(
        repo.name,
        repo.url,
        hosts,
        tasks={"post_release": RELOAD},
        post_release_on_revert=True,
    )
    apply(db, config)
    v1 = deploy(db, settings, repo.name, "v1")["release"]
    serving = {h.address: h.path(f"/srv/{repo.name}.serving") for h in hosts}
    assert {p.read_text().strip() for p in serving.values()} == {v1}
    repo.commit({"index.html": "v2\n", "hold_here": None}, tag="v2")
    for host in hosts:
        host.path(f"/srv/{repo.name}.hold").write_text("")
    hosts[0].path(f"/srv/{repo.name}.fail").write_text("")  # v2's post_release fails there
    doomed = deploys.request_deploy(db, ADMIN, repo.name, "production", "v2")
    victim = _worker(settings)
    try:
        reverting = [h.path(f"/srv/{repo.name}.reverting") for h in hosts]
        _wait(lambda: any(p.exists() for p in reverting), 60, "the run's revert")
        victim.send_signal(signal.SIGKILL)  # every link is back on v1; one reload runs
        victim.wait(10)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait(10)
        hosts[0].path(f"/srv/{repo.name}.fail").unlink(missing_ok=True)
        for host in hosts:
            host.path(f"/srv/{repo.name}.hold").unlink(missing_ok=True)
    v2 = deploy_views.get(db, doomed.id)["release"]
    assert {live(h, repo.name) for h in hosts} == {v1}
    assert v2 in {p.read_text().strip() for p in serving.values()}  # reloaded in v2 there

    rescue(db, settings, doomed.id, float(LEASE))

    result = deploy_views.get(db, doomed.id)
    assert result["status"] == "failed"
    assert {live(h, repo.name) for h in hosts} == {v1}
    # no host left running v2's code behind a link to v1
    assert {a: p.read_text().strip() for a, p in serving.items()} == dict.fromkeys(serving, v1)
