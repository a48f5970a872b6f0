"""Recovery of every kind of deploy, on a real fleet: the state a worker killed mid-deploy
leaves (its deploy ``running`` with an expired lease, some hosts switched, some not) is made
from a real deploy, then another worker takes it over and runs the real recovery. Every host
ends on one complete release, host rows end in a final state, the lock is free, and the
record says what happened."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from ferryman.db.models import Deploy, DeployHost, Lock, utcnow
from ferryman.db.session import Database
from ferryman.jobs.recover_job import recover
from ferryman.services import deploy_views, deploys
from tests.helpers import (
    ADMIN,
    Repo,
    apply,
    deploy,
    live,
    project_config,
    release_dirs,
    rollback,
    unique,
)
from tests.jobs.claiming import Claimer

pytestmark = pytest.mark.fleet
DEAD = "gone-host:1:dead"


def _orphan(db, deploy_id: int, stages: list[str], **values: Any) -> None:
    """What a SIGKILL leaves: running, its worker gone, its lease run out, its stage record
    up to ``stages`` (the last one running)."""
    record = [{"name": n, "status": "success", "hosts": {}} for n in stages]
    if record:
        record[-1]["status"] = "running"
    with db.transaction() as s:
        s.execute(
            update(Deploy)
            .where(Deploy.id == deploy_id)
            .values(
                status="running",
                worker=DEAD,
                lease_expires_at=utcnow() - timedelta(seconds=5),
                finished_at=None,
                error=None,
                stages=record,
                **values,
            )
        )


def _recover(db, settings, deploy_id: int) -> dict[str, Any]:
    rescuer = Claimer(db, "rescuer")
    assert rescuer.take_over_lost(30) == [deploy_id]
    assert asyncio.run(recover(db, settings, deploy_id, rescuer.holder(deploy_id))) is True
    return deploy_views.get(db, deploy_id)


def _point(host, project: str, release: str | None) -> None:
    """Set a host's webroot link as a half-done switch left it."""
    link = host.path(f"/srv/www/{project}")
    if link.is_symlink():
        link.unlink()
    if release is not None:
        os.symlink(f"/srv/releases/{project}/{release}", link)


def _host_rows(db, deploy_id: int) -> dict[str, str]:
    with db.read() as s:
        rows = s.scalars(select(DeployHost).where(DeployHost.deploy_id == deploy_id))
        return {r.host: r.status for r in rows}


def _unlocked(db: Database) -> bool:
    with db.read() as s:
        return s.query(Lock).count() == 0


@pytest.fixture
def repo(git_host, tmp_path) -> Repo:
    repo = Repo(git_host, tmp_path, unique("rec"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    repo.commit({"index.html": "v2\n"}, tag="v2")
    return repo


def test_a_first_deploy_half_switched_when_its_worker_died_leaves_no_host_serving_it(
    db, settings, targets, repo
):
    apply(db, project_config(repo.name, repo.url, targets))
    first = deploy(db, settings, repo.name, "v1")
    half = targets[: len(targets) // 2]
    for host in half:  # these were not switched yet when the worker died
        _point(host, repo.name, None)
    _orphan(db, first["id"], ["prepare", "transfer", "switch"])
    # a switch killed between making its link and renaming it; the dead run's workspace
    half_made = targets[0].path(f"/srv/www/.{repo.name}.tmp-{first['id']}")
    os.symlink(f"/srv/releases/{repo.name}/{first['release']}", half_made)
    workspace = settings.workspaces / "1" / f"deploy-{first['id']}"
    (workspace / "src").mkdir(parents=True)

    result = _recover(db, settings, first["id"])

    assert result["status"] == "failed" and result["error"]["code"] == "worker_lost"
    for host in targets:
        assert live(host, repo.name) is None  # one state everywhere: no webroot, as before
        assert release_dirs(host, repo.name) == []
    assert set(_host_rows(db, first["id"]).values()) <= {"reverted", "unchanged"}
    assert not os.path.lexists(half_made) and not workspace.exists()
    assert _unlocked(db)
    assert deploy(db, settings, repo.name, "v1")["status"] == "success"  # nothing held


def test_a_deploy_that_finished_before_its_worker_died_is_recorded_as_the_success_it_was(
    db, settings, targets, repo
):
    apply(db, project_config(repo.name, repo.url, targets))
    deploy(db, settings, repo.name, "v1")
    second = deploy(db, settings, repo.name, "v2")
    _orphan(db, second["id"], ["prepare", "transfer", "switch", "post_release", "cleanup"])

    result = _recover(db, settings, second["id"])

    assert result["status"] == "success", result["error"]
    for host in targets:
        assert live(host, repo.name) == second["release"]  # nothing was switched back
    assert set(_host_rows(db, second["id"]).values()) == {"success"}
    assert _unlocked(db)


def test_a_config_only_deploy_half_switched_goes_back_and_its_release_is_removed(
    db, settings, targets, repo
):
    apply(db, project_config(repo.name, repo.url, targets))
    first = deploy(db, settings, repo.name, "v1")
    config = deploys.request_config_deploy(db, ADMIN, repo.name, "production")
    from tests.helpers import finish

    done = finish(db, settings, config.id)
    assert done["status"] == "success", done["error"]
    for host in targets[:2]:
        _point(host, repo.name, first["release"])
    _orphan(db, config.id, ["prepare", "live_release", "transfer", "switch"])

    result = _recover(db, settings, config.id)

    assert result["status"] == "failed"
    for host in targets:
        assert live(host, repo.name) == first["release"]
        assert done["release"] not in release_dirs(host, repo.name)
    recorded = _live_by_host(db, config.id)  # the record says what the hosts serve
    assert len(recorded) == len(targets) and set(recorded.values()) == {first["release"]}
    assert _unlocked(db)


def test_a_rollback_whose_worker_died_mid_switch_is_carried_to_its_target_on_every_host(
    db, settings, targets, repo
):
    apply(db, project_config(repo.name, repo.url, targets))
    first = deploy(db, settings, repo.name, "v1")
    second = deploy(db, settings, repo.name, "v2")
    back = rollback(db, settings, repo.name)
    assert back["status"] == "success", back["error"]
    for host in targets[:2]:  # the switch had not reached these
        _point(host, repo.name, second["release"])
    _orphan(db, back["id"], ["prepare", "verify", "switch"], release_name=first["release"])

    result = _recover(db, settings, back["id"])

    assert result["status"] == "failed"
    assert "rollback was completed" in result["error"]["message"]
    for host in targets:
        assert live(host, repo.name) == first["release"]
        assert {first["release"], second["release"]} <= set(release_dirs(host, repo.name))
    assert set(_live_by_host(db, back["id"]).values()) == {first["release"]}
    assert set(_host_rows(db, back["id"]).values()) <= {"success", "unchanged"}
    assert _unlocked(db)


def _project_id(db, deploy_id: int) -> int:
    with db.read() as s:
        return int(s.scalar(select(Deploy.project_id).where(Deploy.id == deploy_id)))


def _live_by_host(db, deploy_id: int) -> dict[str, str]:
    return deploy_views.live_releases(db, _project_id(db, deploy_id), "production")
