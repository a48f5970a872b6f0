"""Session 13 fault review: the recovery's ``post_release`` again, with no such stage on record.

``pipeline/recover._post_release_again`` (``post_release_on_revert``) runs the hook through
``tasks.remote_task``, which records each host's progress in the recorder's stage of that
name (``recorder.stage_host`` → ``_stage``) — but opens no stage: it borrows the dead run's.
A run killed in its switch (or in ``post_release`` before the recorder's next flush) left no
``post_release`` stage on record, and ``_stage`` raises ``KeyError('post_release')``: the
recovery breaks off after switching hosts back ("recovery incomplete"), reruns the hook on
none of them, writes its host rows ``failed``, and skips what follows (a gray release's hosts
are not put back into the load balancer).

The state a kill in the switch leaves is made from a real deploy (as ``test_recovery_kinds``
does): two hosts already on v2 (reloaded there by v2's ``post_release``), the others still
on v1, the record ending in a running ``switch``.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from ferryman.db.models import Deploy, DeployHost, utcnow
from ferryman.jobs.recover_job import recover
from ferryman.services import deploy_views
from tests.helpers import Repo, apply, deploy, live, project_config, unique
from tests.jobs.claiming import Claimer

pytestmark = pytest.mark.fleet

RELOAD = 'basename "$PWD" > /srv/{PROJECT}.serving\n'


def test_a_deploy_killed_in_its_switch_is_reverted_with_post_release_and_ends_in_order(
    db, settings, git_host, targets, tmp_path
):
    hosts = targets[:4]
    repo = Repo(git_host, tmp_path, unique("revstage"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    repo.commit({"index.html": "v2\n"}, tag="v2")
    config = project_config(
        repo.name, repo.url, hosts, tasks={"post_release": RELOAD}, post_release_on_revert=True
    )
    apply(db, config)
    v1 = deploy(db, settings, repo.name, "v1")["release"]
    second = deploy(db, settings, repo.name, "v2")
    assert second["status"] == "success", second["error"]
    v2 = second["release"]
    serving = {h.address: h.path(f"/srv/{repo.name}.serving") for h in hosts}
    # the switch had not reached the last two hosts when the worker died
    for host in hosts[2:]:
        link = host.path(f"/srv/www/{repo.name}")
        link.unlink()
        os.symlink(f"/srv/releases/{repo.name}/{v1}", link)
        serving[host.address].write_text(v1 + "\n")
    with db.transaction() as s:
        s.execute(
            update(Deploy)
            .where(Deploy.id == second["id"])
            .values(
                status="running",
                worker="gone-host:1:dead",
                lease_expires_at=utcnow() - timedelta(seconds=5),
                finished_at=None,
                error=None,
                stages=[
                    {"name": n, "status": "success", "hosts": {}}
                    for n in ("prepare", "checkout", "post_deploy", "transfer", "pre_release")
                ]
                + [{"name": "switch", "status": "running", "hosts": {}}],
            )
        )

    rescuer = Claimer(db, "rescuer")
    assert rescuer.take_over_lost(30) == [second["id"]]
    assert asyncio.run(recover(db, settings, second["id"], rescuer.holder(second["id"])))

    result = deploy_views.get(db, second["id"])
    assert result["status"] == "failed" and result["error"]["code"] == "worker_lost"
    assert {live(h, repo.name) for h in hosts} == {v1}
    assert "recovery incomplete" not in result["error"]["message"], result["error"]
    with db.read() as s:
        rows = set(s.scalars(select(DeployHost.status).where(DeployHost.deploy_id == second["id"])))
    assert rows <= {"reverted", "unchanged"}, rows
    # the hosts switched back were reloaded in v1
    assert {a: p.read_text().strip() for a, p in serving.items()} == dict.fromkeys(serving, v1), v2
