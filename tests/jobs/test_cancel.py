"""Cancelling a running deploy on a real fleet: it stops at the next safe point and every host
stays on a complete release."""

from __future__ import annotations

import threading
import time

import pytest

from ferryman.errors import Conflict
from ferryman.services import deploy_views, deploys
from tests.helpers import (
    ADMIN,
    Repo,
    apply,
    deploy,
    finish,
    live,
    project_config,
    release_dirs,
    unique,
)

pytestmark = pytest.mark.fleet


def _running_build(db, settings, git_host, targets, tmp_path, tasks, **env):
    repo = Repo(git_host, tmp_path, unique("cancel"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, targets))
    first = deploy(db, settings, repo.name, "v1")
    apply(db, project_config(repo.name, repo.url, targets, tasks=tasks, **env))
    repo.commit({"index.html": "v2\n"}, tag="v2")
    queued = deploys.request_deploy(db, ADMIN, repo.name, "production", "v2")
    runner = threading.Thread(target=finish, args=(db, settings, queued.id))
    runner.start()
    return repo, first, queued.id, runner


def _wait_stage(db, deploy_id: int, stage: str) -> None:
    deadline = time.monotonic() + 30
    while not any(
        s["name"] == stage and s["status"] == "running"
        for s in deploy_views.get(db, deploy_id)["stages"]
    ):
        assert time.monotonic() < deadline, f"{stage} never started"
        time.sleep(0.05)


def test_a_deploy_cancelled_during_its_build_switches_nothing_and_leaves_nothing(
    db, settings, git_host, targets, tmp_path
):
    build = {"post_deploy": "sleep 2\n"}
    repo, first, deploy_id, runner = _running_build(
        db, settings, git_host, targets, tmp_path, build
    )
    _wait_stage(db, deploy_id, "post_deploy")
    deploys.request_cancel(db, ADMIN, deploy_id, "wrong branch")
    runner.join(60)
    result = deploy_views.get(db, deploy_id)
    assert result["status"] == "cancelled", result
    assert "wrong branch" in result["error"]["message"]
    for host in targets:
        assert live(host, repo.name) == first["release"]
        assert release_dirs(host, repo.name) == [first["release"]]
    with pytest.raises(Conflict):
        deploys.request_cancel(db, ADMIN, deploy_id)


def test_a_deploy_cancelled_during_a_rolling_post_release_puts_every_host_back(
    db, settings, git_host, targets, tmp_path
):
    slow = {"post_release": "sleep 0.3\n"}
    repo, first, deploy_id, runner = _running_build(
        db, settings, git_host, targets, tmp_path, slow, post_release_delay=0.5
    )
    _wait_stage(db, deploy_id, "post_release")
    deploys.request_cancel(db, ADMIN, deploy_id)
    runner.join(60)
    assert deploy_views.get(db, deploy_id)["status"] == "cancelled"
    assert {live(h, repo.name) for h in targets} == {first["release"]}
