"""Session 13 review: a delta writes through a shared path's link into the shared dir.

``link_shared`` turns a shared path of a release (``storage``) into a link to the shared dir;
the live release keeps that link, and ``manifest.compare`` rightly counts it as Ferryman's own,
so the live release stays the next deploy's delta base. The new release starts as
``cp -al`` of it — the link included. A file under the shared path that the repository
changed or added is then in the delta package: ``fm_inside`` refuses to delete
``storage/data.txt`` through the link (a parent is a symlink) but tar extracts
``storage/data.txt`` through it, into the shared dir: the persistent data every release
(the live one too) links to is overwritten by the repository, during the transfer — before
any switch, and also when the deploy then fails.

With a full package the release's ``storage`` is a real directory and ``link_shared`` replaces
it with the link: the shared dir is only ever seeded, on first use.
"""

from __future__ import annotations

import pytest

from tests.helpers import Repo, apply, deploy, live, project_config, unique

pytestmark = pytest.mark.fleet


def test_a_delta_never_writes_into_the_shared_dir(db, settings, git_host, targets, tmp_path):
    repo = Repo(git_host, tmp_path, unique("s13shared"))
    repo.commit(
        {"index.html": "v1\n", "storage/data.txt": "seed\n", "storage/readme.txt": "r\n"},
        tag="v1",
    )
    host = targets[0]
    apply(db, project_config(repo.name, repo.url, [host], shared=["storage"]))
    first = deploy(db, settings, repo.name, "v1")
    assert first["status"] == "success", first["error"]
    shared = host.path(f"/srv/releases/shared/{repo.name}/production/storage")
    assert (shared / "data.txt").read_text() == "seed\n"  # seeded on first use
    (shared / "data.txt").write_text("production data, written by the app\n")

    changed = {"storage/data.txt": "the repository's\n", "storage/x.php": "<?php\n"}
    repo.commit({"index.html": "v2\n", **changed}, tag="v2")
    tasks = {"pre_release": "echo not today >&2; exit 7\n"}  # it never switches
    apply(db, project_config(repo.name, repo.url, [host], shared=["storage"], tasks=tasks))

    second = deploy(db, settings, repo.name, "v2")

    assert second["status"] == "failed"
    assert live(host, repo.name) == first["release"]
    assert (shared / "data.txt").read_text() == "production data, written by the app\n"
    assert sorted(p.name for p in shared.iterdir()) == ["data.txt", "readme.txt"]
