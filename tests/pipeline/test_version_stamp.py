"""The static-asset version stamp: ``version_file`` names the release inside it, and every
``{VERSION}`` in ``stamp_version_in`` becomes the release name — on every host, the same. A
repository that commits a symlink to make the stamp write outside the release gets a failed
deploy, the file outside untouched, and every host on its old release."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferryman.testing.fleet import FleetHost
from tests.helpers import Repo, apply, deploy, live, project_config, read_live, unique

pytestmark = pytest.mark.fleet

INDEX = '<script src="/app.js?v={VERSION}"></script>\n'
STAMP = {"version_file": "public/version.txt", "stamp_version_in": ["public/index.html"]}


@pytest.fixture
def repo(git_host: FleetHost, tmp_path: Path) -> Repo:
    return Repo(git_host, tmp_path, unique("assets"))


def test_the_version_file_and_stamped_assets_name_the_release_on_every_host(
    db, settings, repo, targets
):
    commit = repo.commit({"public/index.html": INDEX, "public/app.js": "x()\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, targets, **STAMP))
    result = deploy(db, settings, repo.name, "v1")
    assert result["status"] == "success", result["error"]
    rel = result["release"]
    for host in targets:
        assert read_live(host, repo.name, "public/version.txt") == (
            f"VERSION={rel}\nCOMMIT={commit}\nREF=v1\n"
        )
        assert read_live(host, repo.name, "public/index.html") == (
            f'<script src="/app.js?v={rel}"></script>\n'
        )
        assert read_live(host, repo.name, "public/app.js") == "x()\n"

    repo.commit({"public/app.js": "y()\n"}, tag="v2")
    second = deploy(db, settings, repo.name, "v2")
    assert second["status"] == "success", second["error"]
    for host in targets:  # a new release busts the cache again
        assert read_live(host, repo.name, "public/index.html") == (
            f'<script src="/app.js?v={second["release"]}"></script>\n'
        )


def test_a_version_file_in_a_directory_the_build_lacks_is_created(db, settings, repo, targets):
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, targets, version_file="meta/build/version"))
    result = deploy(db, settings, repo.name, "v1")
    assert result["status"] == "success", result["error"]
    assert read_live(targets[0], repo.name, "meta/build/version").startswith(
        f"VERSION={result['release']}\n"
    )


@pytest.mark.parametrize("attack", ["file", "directory", "stamped"])
def test_a_committed_symlink_cannot_make_the_stamp_write_outside_the_release(
    db, settings, repo, targets, tmp_path, attack
):
    repo.commit({"index.html": "v1\n", "public/index.html": INDEX}, tag="v1")
    apply(db, project_config(repo.name, repo.url, targets, **STAMP))
    first = deploy(db, settings, repo.name, "v1")
    assert first["status"] == "success", first["error"]

    outside = tmp_path / "outside"  # a directory on the deploy host, outside any release
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("keep {VERSION}\n")
    public = repo.work / "public"
    if attack == "file":
        (public / "version.txt").symlink_to(victim)
    elif attack == "directory":
        (public / "index.html").unlink()
        public.rmdir()
        public.symlink_to(outside)
    else:
        (public / "index.html").unlink()
        (public / "index.html").symlink_to(victim)
    repo.commit({"index.html": "v2\n"}, tag="v2")
    second = deploy(db, settings, repo.name, "v2")

    assert second["status"] == "failed"
    assert "version stamp" in str(second["error"])
    assert victim.read_text() == "keep {VERSION}\n"
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]
    for host in targets:
        assert live(host, repo.name) == first["release"]
        assert read_live(host, repo.name, "index.html") == "v1\n"
