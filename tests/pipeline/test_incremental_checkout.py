"""The incremental checkout, attacked by the build it follows: whatever a build leaves in the
tree it was given — untracked, ignored, a tracked file changed in place with its size and
mtime kept, modes, unremovable directories, a nested repository, hooks and settings and
skip-worktree bits in ``.git`` — never reaches the next build or a host."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import pytest

from ferryman.config.settings import Settings
from ferryman.services import deploy_views
from ferryman.testing.fleet import FleetHost
from tests.conftest import NET
from tests.helpers import Repo, apply, deploy, git, printed, project_config, unique

pytestmark = pytest.mark.fleet

# Run by every build: prints what it was given, then (on v1 only) leaves every kind of dirt.
BUILD = r"""
echo "TREE $(find . -path ./.git -prune -o -print | sort | tr '\n' ' ')"
echo "INODE $(stat -c %i same.txt)"
for f in index.html keep.txt keep2.txt run.sh; do
    echo "FILE $f $(stat -c %a "$f") $(cat "$f")"
done
if grep -q v1 index.html; then
    echo left > left.txt
    echo log > build.log                       # ignored by .gitignore
    mkdir -p out/deep && echo x > out/deep/artifact
    echo appended >> index.html                # tracked, changed: a new mtime
    m=$(stat -c %Y keep.txt); printf 'EVIL\n' > keep.txt; touch -d "@$m" keep.txt  # same size+mtime
    chmod +x run.sh
    mkdir locked && echo x > locked/inside && chmod 000 locked
    mkdir nested && git -C nested init -q && echo n > nested/file
    git update-index --skip-worktree keep2.txt && echo EVIL > keep2.txt
    printf '#!/bin/sh\ntouch "$PWD/HOOK-RAN"\n' > .git/hooks/post-checkout
    chmod +x .git/hooks/post-checkout
    git config core.fsmonitor 'touch FSMONITOR-RAN; false'
    git config core.hooksPath .git/hooks
fi
echo built-by-this-deploy > built.txt
"""


@pytest.fixture
def sandboxed(settings: Settings) -> Settings:
    base = 1_960_000_000 + int(NET.rsplit(".", 1)[1]) * 10_000
    return dataclasses.replace(settings, sandbox="auto", sandbox_uid_base=base)


@pytest.fixture
def repo(git_host: FleetHost, tmp_path: Path) -> Repo:
    repo = Repo(git_host, tmp_path, unique("inc"))
    repo.commit(
        {
            "index.html": "v1\n",
            "keep.txt": "good\n",
            "keep2.txt": "good\n",
            "run.sh": "echo run\n",
            ".gitignore": "*.log\n",
            "same.txt": "never changed, never rewritten\n",
        },
        tag="v1",
    )
    return repo


def _log(db, deploy_id: int) -> str:
    return "\n".join(x["text"] for x in deploy_views.logs_after(db, deploy_id, 0, 5000))


def _release_files(host: FleetHost, project: str, release: str) -> dict[str, str]:
    root = host.path(f"/srv/releases/{project}/{release}")
    return {
        str(p.relative_to(root)): p.read_text()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".ferryman-")
    }


@pytest.mark.parametrize("mode", ["auto", "off"])
def test_nothing_a_build_leaves_in_the_tree_reaches_the_next_build_or_a_host(
    db, sandboxed, repo, targets, mode
):
    chosen = dataclasses.replace(sandboxed, sandbox=mode)  # off: a superuser's choice
    apply(db, project_config(repo.name, repo.url, targets[:2], tasks={"post_deploy": BUILD}))
    first = deploy(db, chosen, repo.name, "master")
    assert first["status"] == "success", first["error"]
    repo.commit({"index.html": "v2\n"}, tag="v2")
    # as in a repository whose checkout takes more than a second: the kept index is newer
    # than the files (none is "racily clean", which git would compare by content anyway)
    index = next((chosen.home / "trees" / "1").iterdir()) / "git" / "index"
    os.utime(index, (time.time() + 10, time.time() + 10))

    second = deploy(db, chosen, repo.name, "master")

    assert second["status"] == "success", second["error"]
    assert f"incremental checkout: the tree of deploy #{first['id']}" in _log(db, second["id"])
    seen = printed(db, second["id"], "post_deploy")
    tree = next(line for line in seen if line.startswith("TREE "))
    assert tree.split()[1:] == [
        ".",
        "./.gitignore",
        "./index.html",
        "./keep.txt",
        "./keep2.txt",
        "./run.sh",
        "./same.txt",
    ]
    # the tree was moved, and a file no commit or build changed was not written again
    inodes = [
        next(x for x in printed(db, d["id"], "post_deploy") if x.startswith("INODE "))
        for d in (first, second)
    ]
    assert inodes[0] == inodes[1]
    assert [line for line in seen if line.startswith("FILE ")] == [
        "FILE index.html 644 v2",
        "FILE keep.txt 644 good",
        "FILE keep2.txt 644 good",
        "FILE run.sh 644 echo run",
    ]
    for host in targets[:2]:  # exactly the commit and this deploy's own build
        assert _release_files(host, repo.name, second["release"]) == {
            ".gitignore": "*.log\n",
            "index.html": "v2\n",
            "keep.txt": "good\n",
            "keep2.txt": "good\n",
            "run.sh": "echo run\n",
            "same.txt": "never changed, never rewritten\n",
            "built.txt": "built-by-this-deploy\n",
        }


def test_each_environment_has_its_own_tree_and_no_build_can_see_the_kept_ones(
    db, sandboxed, repo, targets
):
    look = (
        f'echo "TREES $(ls -a {sandboxed.home}/trees 2>&1 | tr "\\n" " ")"\n'
        'echo "PWD $(pwd)"\n'
        "echo mine > mine.txt\n"
    )
    env = project_config(repo.name, repo.url, targets[:1], tasks={"post_deploy": look})
    production = env["environments"]["production"]
    staging = dict(production, webroot=f"/srv/www/{repo.name}-s")
    staging["releases"] = f"/srv/releases/{repo.name}-s"
    env["environments"]["staging"] = staging
    apply(db, env)
    runs = [
        deploy(db, sandboxed, repo.name, "v1", env="production"),
        deploy(db, sandboxed, repo.name, "v1", env="staging"),
        deploy(db, sandboxed, repo.name, "v1", env="production"),
        deploy(db, sandboxed, repo.name, "v1", env="staging"),
    ]
    assert [r["status"] for r in runs] == ["success"] * 4
    logs = [_log(db, r["id"]) for r in runs]
    # first of each environment: afresh; then each takes its own environment's tree only
    assert "incremental checkout" not in logs[0] and "incremental checkout" not in logs[1]
    assert f"the tree of deploy #{runs[0]['id']} moved" in logs[2]
    assert f"the tree of deploy #{runs[1]['id']} moved" in logs[3]
    for run in runs:
        trees = next(x for x in printed(db, run["id"], "post_deploy") if x.startswith("TREES"))
        assert "No such file" in trees  # the kept trees are outside every sandbox
    slots = sorted(p.name for p in (sandboxed.home / "trees" / "1").iterdir())
    assert len(slots) == 2  # one per environment
    for slot in slots:
        kept = sandboxed.home / "trees" / "1" / slot
        assert (kept / "tree" / "mine.txt").read_text() == "mine\n"  # as the build left it
        assert (kept / "git" / "HEAD").is_file()


def test_a_kept_tree_of_another_repository_is_never_used(
    db, sandboxed, repo, targets, git_host, tmp_path
):
    apply(db, project_config(repo.name, repo.url, targets[:1]))
    assert deploy(db, sandboxed, repo.name, "v1")["status"] == "success"
    (tmp_path / "o").mkdir()
    other = Repo(git_host, tmp_path / "o", unique("inc-other"))
    other.commit({"index.html": "other\n"}, tag="v1")
    apply(db, project_config(repo.name, other.url, targets[:1]))

    result = deploy(db, sandboxed, repo.name, "v1")

    assert result["status"] == "success", result["error"]
    assert "incremental checkout" not in _log(db, result["id"])
    files = _release_files(targets[0], repo.name, result["release"])
    assert files == {"index.html": "other\n"}


def test_a_tree_that_cannot_be_proven_clean_is_checked_out_afresh(db, sandboxed, repo, targets):
    apply(db, project_config(repo.name, repo.url, targets[:1]))
    first = deploy(db, sandboxed, repo.name, "v1")
    assert first["status"] == "success", first["error"]
    kept = next((sandboxed.home / "trees" / "1").iterdir())
    # a kept index that lies (a path git will not delete); the refresh must notice and give up
    (kept / "git" / "index").unlink()
    (kept / "git" / "HEAD").write_text("not a ref\n")
    repo.commit({"index.html": "v2\n"})

    result = deploy(db, sandboxed, repo.name, "master")

    assert result["status"] == "success", result["error"]
    log = _log(db, result["id"])
    assert "could not be refreshed" in log and "checking out afresh" in log
    assert _release_files(targets[0], repo.name, result["release"]) == {
        ".gitignore": "*.log\n",
        "index.html": "v2\n",
        "keep.txt": "good\n",
        "keep2.txt": "good\n",
        "run.sh": "echo run\n",
        "same.txt": "never changed, never rewritten\n",
    }
    # and the fresh tree is kept in its place, with its own trusted .git
    head = (kept / "git" / "HEAD").read_text().strip()
    assert head == git("rev-parse", "HEAD", cwd=repo.work).strip()
