"""Which release a rollback goes to, on a real fleet: one release for every host, the last
good one — never a failed deploy's leftover, never a release gone or damaged on a host (the
rollback is refused, naming the hosts, and nothing is switched)."""

from __future__ import annotations

import shutil

import pytest

from tests.helpers import Repo, apply, deploy, live, project_config, rollback, unique

pytestmark = pytest.mark.fleet


@pytest.fixture
def repo(git_host, tmp_path) -> Repo:
    repo = Repo(git_host, tmp_path, unique("rbc"))
    for n in (1, 2, 3):
        repo.commit(
            {"index.html": f"v{n}\n", "lib/a.txt": f"a{n}\n", "lib/b.txt": f"b{n}\n"}, tag=f"v{n}"
        )
    return repo


def test_a_rollback_skips_the_release_a_failed_deploy_left_on_the_hosts(
    db, settings, targets, repo
):
    apply(db, project_config(repo.name, repo.url, targets))
    good = deploy(db, settings, repo.name, "v1")
    apply(db, project_config(repo.name, repo.url, targets, tasks={"post_release": "exit 3\n"}))
    failed = deploy(db, settings, repo.name, "v2")  # switched, then put back: v2 stays on disk
    assert failed["status"] == "failed"
    apply(db, project_config(repo.name, repo.url, targets))
    deploy(db, settings, repo.name, "v3")

    back = rollback(db, settings, repo.name)

    assert back["status"] == "success", back["error"]
    assert back["release"] == good["release"]
    assert {live(h, repo.name) for h in targets} == {good["release"]}


def test_a_rollback_is_refused_naming_the_host_whose_previous_release_is_gone(
    db, settings, targets, repo
):
    apply(db, project_config(repo.name, repo.url, targets))
    first = deploy(db, settings, repo.name, "v1")
    second = deploy(db, settings, repo.name, "v2")
    gone = targets[1]
    shutil.rmtree(gone.path(f"/srv/releases/{repo.name}/{first['release']}"))

    back = rollback(db, settings, repo.name)

    assert back["status"] == "failed"
    assert gone.address in back["error"]["message"]
    assert first["release"] in back["error"]["message"]
    for host in targets:  # nothing was switched: not even the hosts that had it
        assert live(host, repo.name) == second["release"]


def test_a_rollback_is_refused_naming_the_host_whose_release_was_damaged(
    db, settings, targets, repo
):
    apply(db, project_config(repo.name, repo.url, targets))
    first = deploy(db, settings, repo.name, "v1")
    second = deploy(db, settings, repo.name, "v2")
    damaged = targets[2]
    (damaged.path(f"/srv/releases/{repo.name}/{first['release']}") / "lib" / "a.txt").unlink()

    back = rollback(db, settings, repo.name)

    assert back["status"] == "failed"
    assert damaged.address in back["error"]["message"]
    assert [h.address for h in targets if h.address in back["error"]["message"]] == [
        damaged.address
    ]
    for host in targets:
        assert live(host, repo.name) == second["release"]
