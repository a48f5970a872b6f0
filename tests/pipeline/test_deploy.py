"""Deploys and rollbacks on the real fleet: content, links, pruning, excludes, shared, tasks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ferryman.services import deploy_views
from ferryman.testing.fleet import FleetHost
from tests.helpers import (
    Repo,
    apply,
    deploy,
    live,
    printed,
    project_config,
    read_live,
    release_dirs,
    rollback,
    unique,
)

pytestmark = pytest.mark.fleet


@pytest.fixture
def repo(git_host: FleetHost, tmp_path: Path) -> Repo:
    return Repo(git_host, tmp_path, unique("site"))


def test_deploy_v1_then_v2_points_every_webroot_at_the_right_content(db, settings, repo, targets):
    repo.commit({"index.html": "v1\n", "lib/app.py": "print(1)\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, targets))
    first = deploy(db, settings, repo.name, "v1")
    assert first["status"] == "success", first["error"]
    assert {read_live(h, repo.name, "index.html") for h in targets} == {"v1\n"}

    repo.commit({"index.html": "v2\n"}, tag="v2")
    second = deploy(db, settings, repo.name, "v2")
    assert second["status"] == "success", second["error"]
    for host in targets:
        assert live(host, repo.name) == second["release"]
        assert read_live(host, repo.name, "index.html") == "v2\n"
        assert read_live(host, repo.name, "lib/app.py") == "print(1)\n"
    assert second["release"].endswith("_v2_" + second["commit"][:7])


def test_rollback_returns_every_host_to_the_previous_release(db, settings, repo, targets):
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, targets))
    first = deploy(db, settings, repo.name, "v1")
    repo.commit({"index.html": "v2\n"}, tag="v2")
    deploy(db, settings, repo.name, "v2")

    back = rollback(db, settings, repo.name)
    assert back["status"] == "success", back["error"]
    assert back["kind"] == "rollback"
    assert {live(h, repo.name) for h in targets} == {first["release"]}
    assert {read_live(h, repo.name, "index.html") for h in targets} == {"v1\n"}
    history = deploy_views.host_history(db, 1, "production")
    assert all(v["live"] == first["release"] for v in history.values())


def test_rollback_to_a_named_release_switches_to_it(db, settings, repo, targets):
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, targets))
    first = deploy(db, settings, repo.name, "v1")
    for n in (2, 3):
        repo.commit({"index.html": f"v{n}\n"}, tag=f"v{n}")
        deploy(db, settings, repo.name, f"v{n}")
    back = rollback(db, settings, repo.name, to=first["release"])
    assert back["status"] == "success", back["error"]
    assert {read_live(h, repo.name, "index.html") for h in targets} == {"v1\n"}


def test_rollback_to_a_release_missing_on_a_host_is_refused_naming_the_host(
    db, settings, repo, targets
):
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, targets))
    first = deploy(db, settings, repo.name, "v1")
    repo.commit({"index.html": "v2\n"}, tag="v2")
    second = deploy(db, settings, repo.name, "v2")
    import shutil

    shutil.rmtree(targets[2].path(f"/srv/releases/{repo.name}/{first['release']}"))
    back = rollback(db, settings, repo.name, to=first["release"])
    assert back["status"] == "failed"
    assert targets[2].address in back["error"]["message"]
    assert {live(h, repo.name) for h in targets} == {second["release"]}


def test_keep_releases_two_after_four_deploys_leaves_live_and_previous(db, settings, repo, targets):
    apply(db, project_config(repo.name, repo.url, targets, keep_releases=2))
    names = []
    for n in range(1, 5):
        repo.commit({"index.html": f"v{n}\n"}, tag=f"v{n}")
        result = deploy(db, settings, repo.name, f"v{n}")
        assert result["status"] == "success", result["error"]
        names.append(result["release"])
    for host in targets:
        assert release_dirs(host, repo.name) == sorted(names[-2:])
        assert live(host, repo.name) == names[-1]


def test_excludes_are_not_shipped_and_shared_paths_are_linked(db, settings, repo, targets):
    repo.commit(
        {
            "index.html": "v1\n",
            "README.md": "docs\n",
            "docs/x.md": "x\n",
            "storage/logs/.keep": "",
            ".env": "APP=dev\n",
            "keep.txt": "k\n",
        },
        tag="v1",
    )
    apply(
        db,
        project_config(
            repo.name, repo.url, targets, excludes=[".git", "*.md"], shared=["storage/logs", ".env"]
        ),
    )
    result = deploy(db, settings, repo.name, "v1")
    assert result["status"] == "success", result["error"]
    for host in targets:
        release = host.path(f"/srv/releases/{repo.name}/{result['release']}")
        assert not (release / "README.md").exists()
        assert not (release / "docs" / "x.md").exists()
        assert not (release / ".git").exists()
        assert (release / "keep.txt").read_text() == "k\n"
        shared = f"/srv/releases/shared/{repo.name}/production"  # per project and env
        assert os.readlink(release / "storage" / "logs") == f"{shared}/storage/logs"
        assert os.readlink(release / ".env") == f"{shared}/.env"
        # seeded from the first release, then kept across deploys
        assert host.path(f"{shared}/.env").read_text() == "APP=dev\n"
        version = (release / ".ferryman-release").read_text()
        assert f'commit: "{result["commit"]}"' in version


def test_redeploy_ships_only_changed_files_and_never_modifies_old_releases(
    db, settings, repo, targets
):
    files = {f"f{i}.txt": f"content {i}\n" for i in range(50)}
    repo.commit(files, tag="v1")
    apply(db, project_config(repo.name, repo.url, targets))
    first = deploy(db, settings, repo.name, "v1")
    repo.commit({"f1.txt": "changed\n", "f2.txt": None, "new.txt": "new\n"}, tag="v2")
    second = deploy(db, settings, repo.name, "v2")
    assert second["status"] == "success", second["error"]
    logs = " ".join(line["text"] for line in deploy_views.logs_after(db, second["id"]))
    assert "2 changed, 2 removed" in logs  # f1 + new.txt sent; f1 + f2 removed first
    for host in targets:
        old = host.path(f"/srv/releases/{repo.name}/{first['release']}")
        new = host.path(f"/srv/releases/{repo.name}/{second['release']}")
        assert (old / "f1.txt").read_text() == "content 1\n"
        assert (new / "f1.txt").read_text() == "changed\n"
        assert (old / "f1.txt").stat().st_ino != (new / "f1.txt").stat().st_ino
        assert (old / "f3.txt").stat().st_ino == (new / "f3.txt").stat().st_ino
        assert (old / "f2.txt").exists() and not (new / "f2.txt").exists()
        assert (new / "new.txt").read_text() == "new\n"


def test_every_task_sees_the_deploy_variables(db, settings, repo, targets, tmp_path):
    repo.commit({"index.html": "v1\n"}, tag="v1")
    tasks = {
        "pre_deploy": 'echo "$PROJECT $ENV $DEPLOY_ID $DEPLOY_USER"\n',
        "post_deploy": 'cd {WORKSPACE}\necho "$TAG $COMMIT $COMMIT_SHORT $VERSION"\n',
        "pre_release": 'echo "$HOST $RELEASE $PWD $WEBROOT $RELEASES" > /srv/pre_release.out\n',
        "post_release": 'echo "{HOST} $VERSION $BRANCH." > /srv/post_release.out\n',
    }
    apply(db, project_config(repo.name, repo.url, targets, tasks=tasks))
    result = deploy(db, settings, repo.name, "v1")
    assert result["status"] == "success", result["error"]
    rel = result["release"]
    commit = result["commit"]
    assert printed(db, result["id"], "pre_deploy") == [
        f"{repo.name} production {result['id']} alice"
    ]
    assert printed(db, result["id"], "post_deploy") == [f"v1 {commit} {commit[:7]} {rel}"]
    releases = f"/srv/releases/{repo.name}"
    for host in targets:
        assert host.path("/srv/pre_release.out").read_text() == (
            f"{host.address} {releases}/{rel} {releases}/{rel} /srv/www/{repo.name} {releases}\n"
        )
        assert host.path("/srv/post_release.out").read_text() == f"{host.address} {rel} .\n"


def test_deploy_to_a_subset_of_hosts_leaves_the_others_alone(db, settings, repo, targets):
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, targets))
    deploy(db, settings, repo.name, "v1")
    repo.commit({"index.html": "v2\n"}, tag="v2")
    result = deploy(db, settings, repo.name, "v2", hosts=[targets[0].address])
    assert result["status"] == "success", result["error"]
    assert read_live(targets[0], repo.name, "index.html") == "v2\n"
    assert {read_live(h, repo.name, "index.html") for h in targets[1:]} == {"v1\n"}


def test_packages_use_zstd_when_every_host_has_it_and_gzip_when_one_lacks_it(
    db, settings, fleet, repo, targets
):
    from ferryman.testing.fleet import add_host

    plain = add_host(
        fleet, unique("nozstd"), f"{targets[0].address.rsplit('.', 1)[0]}.60", without=("zstd",)
    )
    import shutil

    shutil.copy(fleet.known_hosts, settings.known_hosts)  # the new host's key
    try:
        repo.commit({"index.html": "v1\n"}, tag="v1")
        apply(db, project_config(repo.name, repo.url, targets[:2]))
        first = deploy(db, settings, repo.name, "v1")
        logs = " ".join(line["text"] for line in deploy_views.logs_after(db, first["id"]))
        assert "full zstd package" in logs
        apply(db, project_config(repo.name, repo.url, [*targets[:2], plain]))
        repo.commit({"index.html": "v2\n"}, tag="v2")
        second = deploy(db, settings, repo.name, "v2")
        assert second["status"] == "success", second["error"]
        logs = " ".join(line["text"] for line in deploy_views.logs_after(db, second["id"]))
        assert "gzip package" in logs and "zstd package" not in logs
        assert {read_live(h, repo.name, "index.html") for h in [*targets[:2], plain]} == {"v2\n"}
    finally:
        fleet.kill_host(plain)
        fleet.hosts.remove(plain)  # later tests take every fleet host as a target
