"""Review (session 7): deleting a project (``DELETE /projects/{project}``) promises that nothing
on its hosts changes and that its name can be applied again. Two of today's features disagree:
its post-deploy watch goes on after the delete (and rolls its hosts back), and the overlap
refusal still counts the deleted project's paths, so the name cannot be applied again with
the paths it had."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from ferryman.db.models import Deploy, DeployWatch
from ferryman.db.session import Database
from ferryman.errors import ConfigError, NotFound
from ferryman.jobs import watch_job
from ferryman.services import deploys, project_deletion, watch
from ferryman.testing.fleet import FleetHost
from tests.helpers import (
    ADMIN,
    Repo,
    apply,
    deploy,
    finish,
    live,
    member,
    project_config,
    unique,
)


@pytest.fixture
def repo(git_host: FleetHost, tmp_path: Path) -> Repo:
    return Repo(git_host, tmp_path, unique("gone"))


def _watch(db: Database, deploy_id: int) -> DeployWatch:
    with db.read() as s:
        row = s.scalars(select(DeployWatch).where(DeployWatch.deploy_id == deploy_id)).one()
        s.expunge_all()
        return row


@pytest.mark.fleet
def test_deleting_a_project_ends_its_watch_and_nothing_rolls_its_hosts_back(
    db, settings, repo, targets
):
    host = targets[0]
    sick = f"/srv/sick-{repo.name}"
    repo.commit({"index.html": "v1\n"}, tag="v1")
    config = project_config(
        repo.name,
        repo.url,
        [host],
        health_check=[{"command": f"test ! -e {sick}", "retries": 1, "timeout": "5s"}],
        watch={"window": "1h", "every": "1s", "on_failure": "rollback"},
    )
    apply(db, config)
    assert deploy(db, settings, repo.name, "v1")["status"] == "success"
    repo.commit({"index.html": "v2\n"}, tag="v2")
    second = deploy(db, settings, repo.name, "v2")
    assert second["status"] == "success"
    assert _watch(db, second["id"]).status == watch.WATCHING

    project_deletion.delete_project(db, ADMIN, repo.name)
    host.path(sick).write_text("the deleted site's health check now fails\n")
    deadline = time.monotonic() + 20
    while _watch(db, second["id"]).status == watch.WATCHING and time.monotonic() < deadline:
        asyncio.run(watch_job.tick(db, settings, "w1"))
        time.sleep(0.5)

    row = _watch(db, second["id"])
    with db.read() as s:
        project_id = s.get(Deploy, second["id"]).project_id
        queued = s.scalars(
            select(Deploy.id).where(Deploy.project_id == project_id, Deploy.kind == "rollback")
        ).all()
    host.path(sick).unlink()  # healthy again; run what was queued: does the site change?
    for rollback_id in queued:
        finish(db, settings, rollback_id)
    assert live(host, repo.name) == second["release"], "the deleted project's site rolled back"
    assert not queued, f"a rollback of the deleted project was queued: {queued}"
    assert row.status != watch.FAILED and row.rollback_id is None, row.reason


def test_a_deleted_projects_name_is_applied_again_with_the_same_paths(db):
    name = unique("again")
    config = project_config(name, "ssh://git@127.0.180.250/none.git", [])
    config["environments"]["production"]["hosts"] = ["127.0.180.249"]
    apply(db, config)
    project_deletion.delete_project(db, ADMIN, name)
    try:
        apply(db, config)  # "the name is free to be applied again, as a new project"
    except ConfigError as exc:
        pytest.fail(f"refused: {exc.errors}")


@pytest.mark.fleet
def test_a_failed_deploy_of_a_deleted_project_cannot_be_retried(db, settings, repo, targets):
    host = targets[0]
    ready = f"/srv/ready-{repo.name}"
    repo.commit({"index.html": "v1\n"}, tag="v1")
    config = project_config(
        repo.name,
        repo.url,
        [host],
        health_check=[{"command": f"test -e {ready}", "retries": 1, "timeout": "5s"}],
    )
    apply(db, config)
    host.path(ready).write_text("up\n")
    first = deploy(db, settings, repo.name, "v1")
    assert first["status"] == "success", first["error"]
    host.path(ready).unlink()
    repo.commit({"index.html": "v2\n"}, tag="v2")
    failed = deploy(db, settings, repo.name, "v2")
    assert failed["status"] == "failed"
    assert live(host, repo.name) == first["release"]

    project_deletion.delete_project(db, ADMIN, repo.name)  # "nothing on the hosts changes"
    developer = member(db, unique("dev"), "default", "developer")
    host.path(ready).write_text("up\n")
    try:
        again = deploys.request_retry(db, developer, failed["id"])
    except NotFound:
        return  # the deleted project is gone for a retry too
    done = finish(db, settings, again.id)
    assert live(host, repo.name) == first["release"], (
        f"a retry by a developer deployed {done['release']} of the deleted project"
    )
