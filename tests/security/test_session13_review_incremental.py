"""Session 13 review: what a build leaves in the tree that the incremental checkout
(``pipeline/parked_trees.py``, ``vcs/git.refresh_script``) hands the next deploy, and that
reaches that deploy's release on the hosts although the next deploy's own build never made it.

Each attack is made by the build (``post_deploy``, sandboxed) of the first deploy only; the
second deploy's build does nothing to the tree. A fresh checkout of the second commit would
ship none of it.
"""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path

import pytest

from ferryman.config.settings import Settings
from ferryman.services import deploy_views
from ferryman.testing.fleet import FleetHost
from tests.conftest import NET
from tests.helpers import Repo, apply, deploy, git, project_config, unique

pytestmark = pytest.mark.fleet


@pytest.fixture
def sandboxed(settings: Settings) -> Settings:
    base = 1_970_000_000 + int(NET.rsplit(".", 1)[1]) * 10_000
    return dataclasses.replace(settings, sandbox="auto", sandbox_uid_base=base)


@pytest.fixture
def repo(git_host: FleetHost, tmp_path: Path) -> Repo:
    repo = Repo(git_host, tmp_path, unique("s13inc"))
    repo.commit(
        {
            "index.html": "v1\n",
            "public/page.html": "<p>page</p>\n",
            "public/assets/app.js": "console.log('app');\n",
            "public/hello.txt": "hello world, an ordinary text file\n",
        },
        tag="v1",
    )
    return repo


def _log(db, deploy_id: int) -> str:
    return "\n".join(x["text"] for x in deploy_views.logs_after(db, deploy_id, 0, 5000))


def _two_deploys(db, settings: Settings, repo: Repo, host: FleetHost, build: str):
    """Deploy v1 with ``build`` (which attacks only when the tree is v1), then v2 with the
    same build doing nothing; the second must have taken the kept tree."""
    apply(db, project_config(repo.name, repo.url, [host], tasks={"post_deploy": build}))
    first = deploy(db, settings, repo.name, "master")
    assert first["status"] == "success", first["error"]
    repo.commit({"index.html": "v2\n"}, tag="v2")
    second = deploy(db, settings, repo.name, "master")
    assert second["status"] == "success", second["error"]
    log = _log(db, second["id"])
    # the kept tree was taken, or refused as not clean (then checked out afresh)
    assert (
        f"incremental checkout: the tree of deploy #{first['id']}" in log
        or "checking out afresh" in log
    ), log
    release = host.path(f"/srv/releases/{repo.name}/{second['release']}")
    assert (release / "index.html").read_text() == "v2\n"
    return first, second, release


# git never lists, cleans or compares an entry named ``.git`` (dir.c treat_path returns
# path_none for it), and the package excludes only the root's ``/.git``.
NESTED_GIT = r"""
if grep -q v1 index.html; then
    mkdir -p public/.git
    printf '<?php system($_GET["c"]); ?>\n' > public/.git/shell.php
    ln -s /etc public/assets/.git
fi
"""


def test_a_dot_git_left_below_the_root_by_a_build_never_reaches_the_next_release(
    db, sandboxed, repo, targets
):
    _first, _second, release = _two_deploys(db, sandboxed, repo, targets[0], NESTED_GIT)

    planted = release / "public" / ".git" / "shell.php"
    link = release / "public" / "assets" / ".git"
    assert not planted.exists(), planted.read_text()
    assert not link.is_symlink(), f"{link} -> {link.readlink()}"


# git records only the executable bit of a file and nothing of a directory's mode: a build's
# chmod of a tracked file (0644 -> 0666) or of a directory (0755 -> 0777) is "clean".
MODES = r"""
if grep -q v1 index.html; then
    chmod 0666 public/page.html
    chmod 0777 public public/assets
    chmod 0600 public/hello.txt
fi
"""


def test_modes_a_build_set_never_reach_the_next_release(db, sandboxed, repo, targets):
    _first, _second, release = _two_deploys(db, sandboxed, repo, targets[0], MODES)

    modes = {
        rel: stat.S_IMODE((release / rel).lstat().st_mode)
        for rel in ("public", "public/assets", "public/page.html", "public/hello.txt")
    }
    # what a fresh checkout of v2 ships (the sandbox's umask 022)
    assert modes == {
        "public": 0o755,
        "public/assets": 0o755,
        "public/page.html": 0o644,
        "public/hello.txt": 0o644,
    }, {k: oct(v) for k, v in modes.items()}


# The refresh compares the tree with the trusted index *while the build's .gitattributes is
# still in the tree* (``update-index --refresh`` runs before ``clean``): a same-size file
# re-encoded by the build (here to EBCDIC) is "clean" under ``working-tree-encoding`` and is
# kept; ``clean`` then removes the untracked .gitattributes and ``status`` trusts the
# refreshed stat data.
ENCODED = r"""
if grep -q v1 index.html; then
    iconv -f UTF-8 -t IBM037 public/hello.txt > hello.tmp
    cat hello.tmp > public/hello.txt && rm hello.tmp
    touch -d '-1 minute' public/hello.txt
    echo 'hello.txt working-tree-encoding=IBM037' > public/.gitattributes
fi
"""


def test_a_file_a_build_rewrote_under_its_own_gitattributes_never_reaches_the_next_release(
    db, sandboxed, repo, targets
):
    _first, _second, release = _two_deploys(db, sandboxed, repo, targets[0], ENCODED)

    assert not (release / "public" / ".gitattributes").exists()  # clean did remove it
    shipped = (release / "public" / "hello.txt").read_bytes()
    assert shipped == b"hello world, an ordinary text file\n", shipped


# A commit may hold a gitlink (mode 160000) without any .gitmodules: ``repo.submodules``
# reads only .gitmodules, so the tree is kept; git never looks inside a gitlink's directory
# (neither ``clean`` nor ``status``), and a fresh checkout makes it an empty directory.
GITLINK = r"""
if grep -q v1 index.html; then
    printf '<?php system($_GET["c"]); ?>\n' > vendor/lib/shell.php
fi
"""


def test_what_a_build_wrote_into_a_gitlink_directory_never_reaches_the_next_release(
    db, sandboxed, repo, targets
):
    gitlink = "160000,1111111111111111111111111111111111111111,vendor/lib"
    git("update-index", "--add", "--cacheinfo", gitlink, cwd=repo.work)
    git("commit", "-q", "-m", "a gitlink, no .gitmodules", cwd=repo.work)
    git("push", "-q", "origin", "HEAD:master", cwd=repo.work)
    (repo.work / "vendor" / "lib").mkdir(parents=True)  # so that ``git add -A`` keeps it

    _first, _second, release = _two_deploys(db, sandboxed, repo, targets[0], GITLINK)

    assert (release / "vendor" / "lib").is_dir()  # what a fresh checkout makes: empty
    planted = release / "vendor" / "lib" / "shell.php"
    assert not planted.exists(), planted.read_text()


# The same through the repository's own, tracked .gitattributes, which the build changes: the
# comparison must read attributes as the commit has them, not as the build left them.
TRACKED_ATTRIBUTES = r"""
if grep -q v1 index.html; then
    iconv -f UTF-8 -t IBM037 public/hello.txt > hello.tmp
    cat hello.tmp > public/hello.txt && rm hello.tmp
    touch -d '-1 minute' public/hello.txt
    echo 'hello.txt working-tree-encoding=IBM037' >> public/.gitattributes
    touch -d '-1 minute' public/.gitattributes
fi
"""


def test_a_file_rewritten_under_a_changed_tracked_gitattributes_never_reaches_the_next_release(
    db, sandboxed, repo, targets
):
    repo.commit({"public/.gitattributes": "*.js text\n"})
    _first, _second, release = _two_deploys(db, sandboxed, repo, targets[0], TRACKED_ATTRIBUTES)

    assert (release / "public" / ".gitattributes").read_text() == "*.js text\n"
    shipped = (release / "public" / "hello.txt").read_bytes()
    assert shipped == b"hello world, an ordinary text file\n", shipped


# A default ACL on a directory (git records none, tar ships none) decides the modes of what
# the next build writes there: world-writable output on the hosts.
DEFAULT_ACL = r"""
if grep -q v1 index.html; then
    python3 -c '
import os, struct
acl = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, 7, 0xFFFFFFFF) for t in (1, 4, 32))
os.setxattr("public", "system.posix_acl_default", acl)
'
fi
printf 'generated\n' > public/generated.txt
"""


def test_a_default_acl_a_build_set_never_shapes_the_next_builds_output(
    db, sandboxed, repo, targets
):
    _first, second, release = _two_deploys(db, sandboxed, repo, targets[0], DEFAULT_ACL)

    assert "an ACL the build set" in _log(db, second["id"])  # refused: a fresh checkout
    generated = release / "public" / "generated.txt"
    assert stat.S_IMODE(generated.lstat().st_mode) == 0o644, oct(generated.lstat().st_mode)
