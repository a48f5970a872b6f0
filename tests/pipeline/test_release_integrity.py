"""Issue 16, cause 6: releases are checked against their manifest on the hosts (every file's
content hashed there), so a damaged release is named, never copied into a new one and never
reported healthy. Damage is made on the real fleet hosts; host state and records are asserted."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from ferryman.pipeline import integrity
from ferryman.pipeline.context import Context, new_context
from ferryman.services import deploy_views, projects
from ferryman.services.deploy_records import DatabaseWriter
from ferryman.services.deploy_store import database_store
from ferryman.testing.fleet import FleetHost
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

FILES: dict[str, str | None] = {
    **{f"lib/part{i}.txt": f"part {i}\n" for i in range(8)},
    "index.html": "v1\n",
    "assets/css/site.css": "body {}\n",
    "assets/js/app.js": "run()\n",
}


@pytest.fixture
def repo(git_host: FleetHost, tmp_path: Path) -> Repo:
    r = Repo(git_host, tmp_path, unique("integrity"))
    r.commit(FILES, tag="v1")
    return r


def _context(db, settings, name: str) -> Context:
    _found, config = projects.project_config(db, ADMIN, name, "project.read")
    return new_context(
        settings, config, "production", writer=DatabaseWriter(db), store_for=database_store(db)
    )


def _damaged(db, settings, name: str, releases: dict[str, str]) -> dict[str, str]:
    ctx = _context(db, settings, name)

    async def run() -> dict[str, str]:
        try:
            return await integrity.damaged(ctx, releases, "verify")
        finally:
            await ctx.executor.close()

    return asyncio.run(run())


def _release(host: FleetHost, project: str, name: str) -> Path:
    return host.path(f"/srv/releases/{project}/{name}")


def test_a_kept_release_with_half_its_files_deleted_on_one_host_is_named_damaged(
    db, settings, repo, targets
):
    hosts = targets[:3]
    apply(db, project_config(repo.name, repo.url, hosts))
    v1 = deploy(db, settings, repo.name, "v1")["release"]
    repo.commit({"index.html": "v2\n"}, tag="v2")
    assert deploy(db, settings, repo.name, "v2")["status"] == "success"
    kept = _release(hosts[1], repo.name, v1)
    for i in range(4):
        (kept / f"lib/part{i}.txt").unlink()
    shutil.rmtree(kept / "assets")

    found = _damaged(db, settings, repo.name, {h.address: v1 for h in hosts})

    assert list(found) == [hosts[1].address]
    reason = found[hosts[1].address]
    assert reason.startswith("9 missing: assets (+4 inside), lib/part0.txt, ")
    assert "assets/css" not in reason
    assert not (kept / "lib/part0.txt").exists()  # checking changes nothing


def test_a_file_changed_in_place_is_detected_and_a_missing_release_or_manifest_is_damaged(
    db, settings, repo, targets
):
    hosts = targets[:3]
    apply(db, project_config(repo.name, repo.url, hosts))
    v1 = deploy(db, settings, repo.name, "v1")["release"]
    _release(hosts[0], repo.name, v1).joinpath("index.html").write_text("v1 edited\n")
    shutil.rmtree(_release(hosts[1], repo.name, v1))
    _release(hosts[2], repo.name, v1).joinpath(".ferryman-manifest").unlink()

    found = _damaged(db, settings, repo.name, {h.address: v1 for h in hosts})

    assert found == {
        hosts[0].address: "1 changed: index.html (content)",
        hosts[1].address: f"release {v1} is missing",
        hosts[2].address: "its manifest is missing",
    }


def test_committed_links_out_of_the_release_and_odd_file_names_raise_no_false_alarm(
    db, settings, repo, targets
):
    host = targets[0]
    for name, target in (("etc", "/etc"), ("passwd", "/etc/passwd"), ("up", "..")):
        os.symlink(target, repo.work / name)
    odd = {
        "with space.txt": "a\n",
        "new\nline.txt": "b\n",
        "tab\there.txt": "c\n",
        "back\\slash.txt": "d\n",
        "carriage\rreturn.txt": "e\n",
        "中文/名字.html": "f\n",
        "=digests": "g\n",
    }
    repo.commit(odd, tag="v2")
    apply(db, project_config(repo.name, repo.url, [host]))
    result = deploy(db, settings, repo.name, "v2")
    assert result["status"] == "success", result["error"]
    release = _release(host, repo.name, result["release"])
    assert (release / "new\nline.txt").read_text() == "b\n"
    assert os.readlink(release / "etc") == "/etc"

    assert _damaged(db, settings, repo.name, {host.address: result["release"]}) == {}

    # the links are listed as links: a changed target is damage, what they point to is not
    (release / "passwd").unlink()
    os.symlink("/etc/shadow", release / "passwd")
    found = _damaged(db, settings, repo.name, {host.address: result["release"]})
    assert found == {host.address: "1 changed: passwd (link target)"}


def test_config_files_shared_links_and_ferrymans_own_files_are_not_damage(
    db, settings, repo, targets
):
    from ferryman.services import config_files

    host = targets[0]
    repo.commit({"storage/seed.txt": "seed\n"}, tag="v2")
    apply(db, project_config(repo.name, repo.url, [host], shared=["storage", "cache/sessions"]))
    found, _config = projects.project_config(db, ADMIN, repo.name, "project.read")
    config_files.set_file(db, ADMIN, repo.name, "production", "conf/app.env", "HOST=${HOST}\n")
    result = deploy(db, settings, repo.name, "v2")
    assert result["status"] == "success", result["error"]
    release = _release(host, repo.name, result["release"])
    assert (release / "conf/app.env").read_text() == f"HOST={host.address}\n"
    assert (release / "storage").is_symlink()

    assert _damaged(db, settings, repo.name, {host.address: result["release"]}) == {}

    (release / "conf/app.env").unlink()  # a config file the deploy wrote is part of it
    found_now = _damaged(db, settings, repo.name, {host.address: result["release"]})
    assert found_now == {host.address: "1 missing: conf/app.env"}
    assert deploy_views.live_releases(db, found.id, "production") == {
        host.address: result["release"]
    }


def _log(db, deploy_id: int, host: str = "") -> list[str]:
    return [
        line["text"]
        for line in deploy_views.logs_after(db, deploy_id, limit=5000)
        if not host or line["host"] == host
    ]


def test_a_directory_deleted_from_the_live_release_is_back_in_the_next_release(
    db, settings, repo, targets
):
    hosts = targets[:2]
    apply(db, project_config(repo.name, repo.url, hosts))
    v1 = deploy(db, settings, repo.name, "v1")["release"]
    damaged = hosts[1]
    shutil.rmtree(_release(damaged, repo.name, v1) / "assets")

    repo.commit({"index.html": "v2\n"}, tag="v2")
    second = deploy(db, settings, repo.name, "v2")

    assert second["status"] == "success", second["error"]
    for host in hosts:
        release = _release(host, repo.name, second["release"])
        assert live(host, repo.name) == second["release"]
        assert (release / "assets/css/site.css").read_text() == "body {}\n"
        assert (release / "assets/js/app.js").read_text() == "run()\n"
        assert (release / "index.html").read_text() == "v2\n"
    fell_back = [t for t in _log(db, second["id"], damaged.address) if "does not match" in t]
    assert fell_back == [
        f"live release {v1} does not match its manifest (5 missing: assets (+4 inside)): "
        "sending the full release"
    ]
    assert not any("does not match" in t for t in _log(db, second["id"], hosts[0].address))
    # the early copy of the damaged release is gone
    assert release_dirs(damaged, repo.name) == sorted([v1, second["release"]])
    assert _damaged(db, settings, repo.name, {h.address: second["release"] for h in hosts}) == {}


def test_a_config_only_deploy_of_a_damaged_live_release_is_refused_and_changes_no_host(
    db, settings, repo, targets
):
    from ferryman.services import config_files, deploys

    hosts = targets[:2]
    apply(db, project_config(repo.name, repo.url, hosts))
    config_files.set_file(db, ADMIN, repo.name, "production", "app.env", "A=1\n")
    v1 = deploy(db, settings, repo.name, "v1")["release"]
    (_release(hosts[0], repo.name, v1) / "index.html").unlink()
    config_files.set_file(db, ADMIN, repo.name, "production", "app.env", "A=2\n")

    only = finish(
        db, settings, deploys.request_config_deploy(db, ADMIN, repo.name, "production").id
    )

    assert only["status"] == "failed"
    assert only["error"]["code"] == "conflict"
    assert hosts[0].address in only["error"]["message"]
    assert hosts[1].address not in only["error"]["message"]
    for host in hosts:
        assert live(host, repo.name) == v1
        assert release_dirs(host, repo.name) == [v1]
        assert (_release(host, repo.name, v1) / "app.env").read_text() == "A=1\n"


def _in_host(host: FleetHost, *argv: str) -> str:
    """Run ``argv`` in ``host``'s mount namespace (what it sees as /srv), as root."""
    import subprocess

    return subprocess.run(
        ["nsenter", "-t", str(host.pid()), "-m", *argv], check=True, capture_output=True, text=True
    ).stdout


def test_a_full_disk_on_a_host_is_named_in_the_deploys_error_and_leaves_it_on_its_release(
    db, settings, repo, targets
):
    hosts = targets[:2]
    full = hosts[1]
    releases = f"/srv/releases/{repo.name}"
    full.path(releases).mkdir(parents=True)
    _in_host(full, "mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", releases)
    try:
        apply(db, project_config(repo.name, repo.url, hosts))
        v1 = deploy(db, settings, repo.name, "v1")["release"]
        repo.commit({"big.txt": os.urandom(400_000).hex()}, tag="v2")
        result = deploy(db, settings, repo.name, "v2")

        assert result["status"] == "failed"
        assert "No space left on device" in result["error"]["message"]
        assert result["error"]["details"]["host"] == full.address
        assert {live(h, repo.name) for h in hosts} == {v1}
        left = _in_host(full, "ls", "-A", releases).split()
        assert [n for n in left if not n.startswith(".")] == [v1]  # no partial release
        assert not any(n.startswith(".ferryman-next-") for n in left)
        assert release_dirs(hosts[0], repo.name) == [v1]
    finally:
        _in_host(full, "umount", "-l", releases)
