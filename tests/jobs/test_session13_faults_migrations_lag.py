"""Session 13 fault review: the recovery's migrations listing and a stage record that lags.

The recovery now lists the migrations of an undone deploy that "had reached its switch"
(``pipeline/recover._list_migrations``), and it tells that from the dead run's stage record
(``release.SWITCH in abandoned.stages``). That record is written in batches, every 0.3 s
(``pipeline/recorder.FLUSH_SECONDS``): a run killed in a fast ``post_release`` (a quick
migration), or early in its listing, has switched every host and migrated the database
while the record it left still ends at ``pre_release``. The hosts say it (their webroots
point at the new release); the recovery did not look there, listed nothing, and the rollback
guard missed the irreversible migration again. It now takes a host serving the new release
as proof of the switch too. (``test_session13_faults_migrations.py``
meets this race about one run in three.)

The state such a kill leaves is made from a real deploy, as ``test_recovery_kinds.py`` does:
every host switched to v2, v2's ``post_release`` applied an irreversible migration, no
listing of v2 on record, the run's record ending in ``pre_release``.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import delete, update

from ferryman.db.models import Deploy, ReleaseMigrations, utcnow
from ferryman.errors import Conflict
from ferryman.jobs.recover_job import recover
from ferryman.services import deploy_views, deploys
from tests.helpers import ADMIN, Repo, apply, deploy, live, project_config, unique
from tests.jobs.claiming import Claimer
from tests.jobs.test_session13_faults_migrations import FIRST, MIGRATE, SECOND

pytestmark = pytest.mark.fleet


def _config(repo: Repo, hosts) -> dict:
    config = project_config(repo.name, repo.url, hosts)
    env = config["environments"]["production"]
    env["tasks"] = {"post_release": MIGRATE}
    env["migrations"] = {"command": "cat /srv/appdb/{PROJECT}", "timeout": "20s"}
    return config


def test_a_deploy_killed_before_its_switch_was_on_record_still_has_its_migrations_listed(
    db, settings, git_host, targets, tmp_path
):
    hosts = targets[:2]
    repo = Repo(git_host, tmp_path, unique("miglag"))
    repo.commit({"index.html": "v0\n", "migrations.txt": ""}, tag="v0")
    apply(db, _config(repo, hosts))
    assert deploy(db, settings, repo.name, "v0")["status"] == "success"
    repo.commit({"index.html": "v1\n", "migrations.txt": FIRST}, tag="v1")
    v1 = deploy(db, settings, repo.name, "v1")
    assert v1["status"] == "success", v1["error"]
    repo.commit({"index.html": "v2\n", "migrations.txt": SECOND}, tag="v2")
    v2 = deploy(db, settings, repo.name, "v2")
    assert v2["status"] == "success", v2["error"]
    # what a SIGKILL right after v2's post_release leaves: every host switched and migrated,
    # no listing yet, and a record whose last flushed stage is pre_release
    with db.transaction() as s:
        s.execute(delete(ReleaseMigrations).where(ReleaseMigrations.deploy_id == v2["id"]))
        s.execute(
            update(Deploy)
            .where(Deploy.id == v2["id"])
            .values(
                status="running",
                worker="gone-host:1:dead",
                lease_expires_at=utcnow() - timedelta(seconds=5),
                finished_at=None,
                error=None,
                stages=[
                    {"name": n, "status": "success", "hosts": {}}
                    for n in ("prepare", "checkout", "post_deploy", "transfer")
                ]
                + [{"name": "pre_release", "status": "running", "hosts": {}}],
            )
        )
    assert {live(h, repo.name) for h in hosts} == {v2["release"]}
    for host in hosts:
        assert "20240102_drop_legacy" in host.path(f"/srv/appdb/{repo.name}").read_text()

    rescuer = Claimer(db, "rescuer")
    assert rescuer.take_over_lost(30) == [v2["id"]]
    assert asyncio.run(recover(db, settings, v2["id"], rescuer.holder(v2["id"])))

    result = deploy_views.get(db, v2["id"])
    assert result["status"] == "failed" and result["error"]["code"] == "worker_lost"
    assert {live(h, repo.name) for h in hosts} == {v1["release"]}  # put back
    # going back to v0 crosses the irreversible 20240102_drop_legacy v2 applied
    with pytest.raises(Conflict) as refused:
        deploys.request_rollback(db, ADMIN, repo.name, "production")
    assert "20240102_drop_legacy" in refused.value.message
