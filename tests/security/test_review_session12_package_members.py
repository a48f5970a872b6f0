"""Session 12 review of "package members from the lstat alone" (9f30ef2): a hostile build, run
in the sandbox as a project's ``post_deploy`` task, leaves in the tree what the package's new
header code must still ship safely — symlinks out of the tree (to a file and to a directory of
the deploy host), hard links, a FIFO, a setuid bit, names with a newline, a non-UTF-8 byte or
hundreds of characters. The hosts' release is read back: links stay links, nothing of the deploy
host's files is on a host, only rwx bits, every odd name intact, and the deploy finishes."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest

from ferryman.config.settings import Settings
from ferryman.testing.fleet import FleetHost
from tests.conftest import NET
from tests.helpers import Repo, apply, deploy, live, project_config, unique

pytestmark = pytest.mark.fleet

LONG = "l" * 200  # a name past ustar's 100 bytes: a PAX header carries it
DEEP = "/".join(["d" * 60] * 5)  # a path past ustar's 255 bytes

BUILD = rf"""
cd {{WORKSPACE}}
ln -s /etc/hostname leak-file
ln -s /root leak-dir
ln -s ../../../../../../etc leak-up
ln index.html twin.html
mkfifo pipe
printf 'suid\n' > suid.sh && chmod 4755 suid.sh
printf 'sgid\n' > sgid.sh && chmod 2775 sgid.sh
printf 'nl\n' > "$(printf 'new\nline')"
printf 'bad\n' > "$(printf 'bad\377name')"
printf 'long\n' > {LONG}
mkdir -p {DEEP} && printf 'deep\n' > {DEEP}/file
"""


@pytest.fixture
def sandboxed(settings: Settings) -> Settings:
    base = 1_975_000_000 + int(NET.rsplit(".", 1)[1]) * 10_000
    return dataclasses.replace(settings, sandbox="auto", sandbox_uid_base=base)


def _release(host: FleetHost, project: str) -> Path:
    name = live(host, project)
    assert name is not None, "no live release"
    return host.path(f"/srv/releases/{project}/{name}")


def test_what_a_hostile_build_leaves_ships_as_itself_and_nothing_of_the_deploy_host(
    db, sandboxed, git_host, targets, tmp_path
):
    repo = Repo(git_host, tmp_path, unique("members"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(
        db,
        project_config(repo.name, repo.url, targets[:2], tasks={"post_deploy": BUILD}),
    )
    result = deploy(db, sandboxed, repo.name, "v1")
    assert result["status"] == "success", result["error"]
    for host in targets[:2]:
        release = _release(host, repo.name)
        for link, target in (
            ("leak-file", "/etc/hostname"),
            ("leak-dir", "/root"),
            ("leak-up", "../../../../../../etc"),
        ):
            path = release / link
            assert path.is_symlink(), link  # shipped as the link, never what it points to
            assert os.readlink(path) == target
        assert (release / "twin.html").read_text() == "v1\n"
        assert not (release / "twin.html").is_symlink()
        assert not os.path.lexists(release / "pipe")  # neither a file, a dir nor a link
        for name in ("suid.sh", "sgid.sh"):
            mode = (release / name).lstat().st_mode
            assert mode & 0o7000 == 0, (name, oct(mode))
        assert (release / "new\nline").read_text() == "nl\n"
        raw = os.fsencode(str(release)) + b"/bad\xffname"
        with open(raw, "rb") as fh:
            assert fh.read() == b"bad\n"
        assert (release / LONG).read_text() == "long\n"
        assert (release / DEEP / "file").read_text() == "deep\n"
        # nothing in the release is a device, a FIFO or a socket, and no file holds the deploy
        # host's own hostname file (the one a followed link would have copied)
        own = Path("/etc/hostname").read_bytes()
        for dirpath, dirnames, filenames in os.walk(release):
            for name in dirnames + filenames:
                st = os.lstat(os.path.join(dirpath, name))
                assert not (
                    stat.S_ISFIFO(st.st_mode)
                    or stat.S_ISCHR(st.st_mode)
                    or stat.S_ISBLK(st.st_mode)
                    or stat.S_ISSOCK(st.st_mode)
                ), name
            for name in filenames:
                full = os.path.join(dirpath, name)
                if not os.path.islink(full) and os.path.getsize(full) == len(own):
                    with open(full, "rb") as fh:
                        assert fh.read() != own, full
