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
