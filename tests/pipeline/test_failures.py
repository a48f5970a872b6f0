"""Failures leave every host on a complete release and nothing locked."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from ferryman.db.models import Lock
from ferryman.db.session import Database
from ferryman.errors import Conflict
from ferryman.services import deploy_views, deploys, locks
from ferryman.testing.fleet import Fleet, FleetHost, restart_host
from tests.helpers import (
    ADMIN,
    Repo,
    apply,
    deploy,
    finish,
    live,
    project_config,
    read_live,
    release_dirs,
    unique,
)

pytestmark = pytest.mark.fleet


@pytest.fixture
def repo(git_host: FleetHost, tmp_path: Path) -> Repo:
    r = Repo(git_host, tmp_path, unique("fail"))
    r.commit({"index.html": "v1\n"}, tag="v1")
    return r


def _no_locks(db: Database) -> bool:
    with db.read() as s:
        return s.query(Lock).count() == 0


def _fail_on(host: FleetHost) -> str:
    return f'if [ "$HOST" = "{host.address}" ]; then echo "broken on $HOST" >&2; exit 7; fi\n'


def test_failed_pre_release_on_one_host_switches_no_host_and_leaves_no_partial_dirs(
    db, settings, repo, targets
):
    apply(db, project_config(repo.name, repo.url, targets))
    first = deploy(db, settings, repo.name, "v1")
    apply(
        db,
        project_config(repo.name, repo.url, targets, tasks={"pre_release": _fail_on(targets[2])}),
    )
    repo.commit({"index.html": "v2\n"}, tag="v2")
    result = deploy(db, settings, repo.name, "v2")
    assert result["status"] == "failed"
    error = result["error"]
    assert error["details"]["host"] == targets[2].address
    assert error["details"]["stage"] == "pre_release"
    assert error["details"]["exit_status"] == 7
    assert "broken on" in error["details"]["stderr_tail"]
    for host in targets:
        assert live(host, repo.name) == first["release"]
        assert release_dirs(host, repo.name) == [first["release"]]
    assert _no_locks(db)


def test_a_failed_build_removes_the_copies_hosts_linked_while_it_ran(db, settings, repo, targets):
    apply(db, project_config(repo.name, repo.url, targets))
    first = deploy(db, settings, repo.name, "v1")
    tasks = {"post_deploy": "sleep 0.5\necho 'build broke' >&2\nexit 4\n"}
    apply(db, project_config(repo.name, repo.url, targets, tasks=tasks))
    repo.commit({"index.html": "v2\n"}, tag="v2")
    result = deploy(db, settings, repo.name, "v2")
    assert result["status"] == "failed" and result["error"]["code"] == "task_failed"
    for host in targets:
        assert live(host, repo.name) == first["release"]
        assert release_dirs(host, repo.name) == [first["release"]]  # no .ferryman-next-*
    assert _no_locks(db)


def test_failed_post_release_on_one_host_puts_every_host_back_on_the_previous_release(
    db, settings, repo, targets
):
    apply(db, project_config(repo.name, repo.url, targets))
    first = deploy(db, settings, repo.name, "v1")
    apply(
        db,
        project_config(repo.name, repo.url, targets, tasks={"post_release": _fail_on(targets[4])}),
    )
    repo.commit({"index.html": "v2\n"}, tag="v2")
    result = deploy(db, settings, repo.name, "v2")
    assert result["status"] == "failed"
    assert result["error"]["details"]["stage"] == "post_release"
    assert {live(h, repo.name) for h in targets} == {first["release"]}
    assert {read_live(h, repo.name, "index.html") for h in targets} == {"v1\n"}
    history = deploy_views.host_history(db, deploys.load(db, result["id"])[1].id, "production")
    assert {v["live"] for v in history.values()} == {first["release"]}
    assert [s["name"] for s in result["stages"]][-1] == "revert"
    assert _no_locks(db)


def test_failed_first_deploy_after_switch_removes_the_new_webroot_link(db, settings, repo, targets):
    apply(
        db,
        project_config(repo.name, repo.url, targets, tasks={"post_release": _fail_on(targets[0])}),
    )
    result = deploy(db, settings, repo.name, "v1")
    assert result["status"] == "failed"
    assert all(live(h, repo.name) is None for h in targets)


def test_sshd_killed_during_transfer_fails_cleanly_and_releases_the_lock(
    db, settings, repo, targets, fleet: Fleet
):
    import os

    apply(db, project_config(repo.name, repo.url, targets, compress=False))
    first = deploy(db, settings, repo.name, "v1")
    repo.commit({"big.bin": os.urandom(40_000_000).hex()[:40_000_000]}, tag="v2")
    victim = targets[1]
    stop = threading.Event()

    def killer() -> None:
        releases = victim.path(f"/srv/releases/{repo.name}")
        while not stop.is_set():
            if len([p for p in releases.iterdir() if not p.name.startswith(".")]) > 1:
                fleet.kill_host(victim)
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=killer)
    watcher.start()
    try:
        result = deploy(db, settings, repo.name, "v2")
    finally:
        stop.set()
        watcher.join()
        restart_host(fleet, victim)
    assert result["status"] == "failed"
    assert result["error"]["details"]["host"] == victim.address
    assert result["error"]["details"]["stage"] == "transfer"
    for host in targets:
        assert live(host, repo.name) == first["release"]
        if host is not victim:
            assert release_dirs(host, repo.name) == [first["release"]]
    assert _no_locks(db)
    again = deploy(db, settings, repo.name, "v2")
    assert again["status"] == "success", again["error"]
    assert release_dirs(victim, repo.name) == sorted([first["release"], again["release"]])


def test_a_hanging_target_task_times_out_instead_of_hanging(db, settings, repo, targets):
    apply(
        db,
        project_config(
            repo.name, repo.url, targets, task_timeout=2, tasks={"pre_release": "sleep 600\n"}
        ),
    )
    result = deploy(db, settings, repo.name, "v1")
    assert result["status"] == "failed"
    assert result["error"]["code"] == "timeout"
    assert "timed out after 2s" in result["error"]["message"]
    assert all(release_dirs(h, repo.name) == [] for h in targets)
    assert _no_locks(db)


def test_a_hanging_build_on_the_deploy_host_times_out(db, settings, repo, targets):
    apply(
        db,
        project_config(
            repo.name,
            repo.url,
            targets,
            task_timeout=1,
            tasks={"post_deploy": "sleep 600 &\nsleep 600\n"},
        ),
    )
    result = deploy(db, settings, repo.name, "v1")
    assert result["status"] == "failed"
    assert result["error"]["code"] == "timeout"
    assert "post_deploy" in result["error"]["message"]


def test_a_webroot_that_is_a_real_directory_is_refused_and_left_untouched(
    db, settings, repo, targets
):
    name = repo.name
    real = targets[3].path(f"/srv/www/{name}")
    real.mkdir()
    (real / "precious.html").write_text("keep me\n")
    apply(db, project_config(name, repo.url, targets))
    result = deploy(db, settings, name, "v1")
    assert result["status"] == "failed"
    assert "real directory" in result["error"]["message"]
    assert (real / "precious.html").read_text() == "keep me\n"
    assert not real.is_symlink()
    assert all(live(h, name) is None for h in targets if h is not targets[3])
    assert all(release_dirs(h, name) == [] for h in targets)


def test_a_second_deploy_while_one_is_queued_or_running_is_refused(db, settings, repo, targets):
    apply(db, project_config(repo.name, repo.url, targets))
    pending = deploys.request_deploy(db, ADMIN, repo.name, "production", "v1")
    with pytest.raises(Conflict, match=rf"busy: deploy #{pending.id} by alice is queued"):
        deploys.request_deploy(db, ADMIN, repo.name, "production", "v1")
    assert finish(db, settings, pending.id)["status"] == "success"


def test_a_deploy_that_finds_the_lock_held_fails_naming_the_holder(db, settings, repo, targets):
    apply(db, project_config(repo.name, repo.url, targets))
    d = deploys.request_deploy(db, ADMIN, repo.name, "production", "v1")
    key = locks.deploy_key(d.project_id, "production")
    locks.acquire(db, key, owner="other-worker", deploy_id=999, holder="bob", lease=60)
    try:
        result = finish(db, settings, d.id)
    finally:
        locks.release(db, key, owner="other-worker")
    assert result["status"] == "failed"
    assert result["error"]["code"] == "lock_held"
    assert "deploy #999" in result["error"]["message"] and "bob" in result["error"]["message"]
    # named as people call it (the lock's key holds the project's id)
    assert result["error"]["message"].startswith(f"{repo.name} production is locked by")
    assert all(release_dirs(h, repo.name) == [] for h in targets)
