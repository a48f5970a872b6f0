"""Deploying from a real svnserve: ``svn export`` of a path at a revision."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import apply, deploy, live, project_config, read_live, unique

pytestmark = pytest.mark.fleet


def _svn(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(
        ["svn", *args, "--non-interactive", "-q"],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def test_svn_deploy_exports_the_path_and_revision_asked_for(db, settings, svn, targets, tmp_path):
    root, base_url = svn
    name = unique("svn")
    subprocess.run(["svnadmin", "create", str(root / name)], check=True)
    url = f"file://{root / name}"
    work = tmp_path / "wc"
    _svn("mkdir", "--parents", "-m", "layout", f"{url}/trunk", f"{url}/tags")
    _svn("checkout", f"{url}/trunk", str(work))
    (work / "index.html").write_text("r2\n")
    _svn("add", "index.html", cwd=work)
    _svn("commit", "-m", "first", cwd=work)  # r2
    (work / "index.html").write_text("r3\n")
    _svn("commit", "-m", "second", cwd=work)  # r3
    _svn("copy", "-m", "tag", f"{url}/trunk@2", f"{url}/tags/v1")  # r4

    apply(db, project_config(name, f"{base_url}/{name}", targets))
    head = deploy(db, settings, name, "trunk")
    assert head["status"] == "success", head["error"]
    assert head["commit"] == "r3"
    assert {read_live(h, name, "index.html") for h in targets} == {"r3\n"}

    pinned = deploy(db, settings, name, "trunk@2")
    assert pinned["status"] == "success", pinned["error"]
    assert {read_live(h, name, "index.html") for h in targets} == {"r2\n"}

    tagged = deploy(db, settings, name, "tags/v1")
    assert tagged["status"] == "success", tagged["error"]
    assert {live(h, name) for h in targets} == {tagged["release"]}
    assert "_tags-v1_" in tagged["release"]
    assert not any(
        p.name == ".svn"
        for p in targets[0].path(f"/srv/releases/{name}/{tagged['release']}").iterdir()
    )


def test_svn_refs_and_the_preview_read_the_real_repository(settings, svn, tmp_path):
    import asyncio

    from ferryman.config.project import parse_project
    from ferryman.pipeline.context import SpaceAccess
    from ferryman.services import repos

    root, base_url = svn
    name = unique("svnrefs")
    subprocess.run(["svnadmin", "create", str(root / name)], check=True)
    url = f"file://{root / name}"
    work = tmp_path / "wc"
    _svn("mkdir", "--parents", "-m", "layout", f"{url}/trunk", f"{url}/tags", f"{url}/branches")
    _svn("checkout", f"{url}/trunk", str(work))
    (work / "index.html").write_text("r2\n")
    _svn("add", "index.html", cwd=work)
    _svn("commit", "-m", "first page", cwd=work)  # r2
    (work / "app.txt").write_text("new\n")
    _svn("add", "app.txt", cwd=work)
    (work / "index.html").write_text("r3\n")
    _svn("commit", "-m", "second page\nwith details", cwd=work)  # r3
    _svn("copy", "-m", "tag", f"{url}/trunk@3", f"{url}/tags/v1")  # r4
    _svn("copy", "-m", "branch", f"{url}/trunk@3", f"{url}/branches/hotfix")  # r5

    raw = project_config(name, f"{base_url}/{name}", [])
    raw["environments"]["production"]["hosts"] = ["127.0.0.1"]
    config = parse_project(raw)
    space = SpaceAccess(id=1, name="default")
    found = asyncio.run(repos.refs(settings, config, limit=10, space=space))
    assert [b["name"] for b in found["branches"]] == ["branches/hotfix"]
    assert [t["name"] for t in found["tags"]] == ["tags/v1"]
    assert [c["message"] for c in found["commits"]][:2] == ["second page", "first page"]
    change = asyncio.run(
        repos.changes(settings, config, "production", "trunk", "r2", "r3", space=space)
    )
    assert [c.id for c in change.commits] == ["r3"]
    assert sorted(change.files) == [("A", "app.txt"), ("M", "index.html")]
