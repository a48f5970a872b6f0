"""The incremental checkout: a successful git deploy's work tree is parked for the next deploy
of the same project and environment, which moves it into its own workspace and brings it to
its commit instead of checking out every file afresh.

Where: ``$FERRYMAN_HOME/trees/<space id>/<project id>-<env digest>/`` (root's, 0700; no
sandbox ever sees it), holding ``tree/`` (the parked tree) and ``git/`` (a copy of the tree's
``.git`` made right after its checkout, before any build ran: the only ``.git`` trusted later;
whatever a build did to the tree's own ``.git`` is thrown away). A slot belongs to one
project and environment, so a build of one environment never prepares another's tree, and
only one deploy of an environment runs at a time (the lock); the tree is *moved* (a rename),
never shared or linked, so each deploy still has a tree of its own.

Clean, and proven: every entry of the tree gets a new ctime (``_own``) and the trusted index
an mtime before every file's (``_all_racy``), so git compares every file with it by content;
the refresh (``vcs/git.refresh_script``, in the deploy's sandbox) then writes again what
differs (``checkout --force``), removes every untracked and ignored path (``clean -ffdx``),
and fails unless ``git status --ignored`` says nothing. Any failure, a repository with
submodules, or svn: a fresh checkout, as before.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import stat
from pathlib import Path

from ferryman import sandbox
from ferryman.domain.statuses import DeployStatus
from ferryman.errors import VcsError
from ferryman.pipeline.context import Context
from ferryman.vcs.base import Resolved, SandboxRun, Vcs
from ferryman.vcs.git import GitRepo

TREE = "tree"
GIT = "git"
FROM = "from"  # the deploy whose tree is parked


def slot_name(project_id: int, env: str) -> str:
    """The name of a project environment's slot under ``trees/<space id>/``."""
    return f"{project_id}-{hashlib.sha256(env.encode()).hexdigest()[:16]}"


def slot(ctx: Context) -> Path:
    return ctx.settings.home / "trees" / str(ctx.space.id) / slot_name(ctx.project_id, ctx.env_name)


def _pending(ctx: Context) -> Path:
    return slot(ctx) / f"next-{ctx.deploy_id}"


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


async def check_out(
    ctx: Context, repo: Vcs, resolved: Resolved, sandboxed: SandboxRun | None
) -> None:
    """Write exactly ``resolved`` into ``ctx.tree``: from the parked tree where there is one
    that can be proven clean, else afresh; and keep what the next deploy will trust."""
    keepable = isinstance(repo, GitRepo) and not await repo.submodules(resolved.commit)
    done = False
    if keepable and isinstance(repo, GitRepo):
        done = await _refresh(ctx, repo, resolved, sandboxed)
    if not done:
        await repo.export(resolved, ctx.tree, sandboxed)
    if keepable:
        await asyncio.to_thread(_remember, ctx)


async def _refresh(
    ctx: Context, repo: GitRepo, resolved: Resolved, sandboxed: SandboxRun | None
) -> bool:
    try:
        parked = await asyncio.to_thread(_take, ctx, repo.mirror)
    except Refused as exc:
        ctx.recorder.log(
            f"the kept tree was not taken ({exc}); checking out afresh", stage="checkout"
        )
        return False
    if parked is None:
        return False
    try:
        await repo.refresh(resolved, ctx.tree, sandboxed)
    except VcsError as exc:
        ctx.recorder.log(
            f"the kept tree could not be refreshed ({exc.message}); checking out afresh",
            stage="checkout",
        )
        await asyncio.to_thread(_remove, ctx.tree)
        return False
    ctx.recorder.log(
        f"incremental checkout: the tree of deploy #{parked} moved to {resolved.commit}",
        stage="checkout",
    )
    return True


class Refused(Exception):
    """The parked tree could not be taken as it is (moved, owned, checked): removed, and the
    deploy checks out afresh, saying why."""


def _take(ctx: Context, mirror: Path) -> str | None:
    """Move the parked tree into the workspace with its trusted ``.git``, owned by this
    deploy's sandbox uid; the parking deploy's id, or None (nothing usable: check out
    afresh); ``Refused`` when taking it failed."""
    root = slot(ctx)
    if not root.is_dir():
        return None
    for stale in root.glob("next-*"):  # left by runs that died
        _remove(stale)
    tree, git = root / TREE, root / GIT
    try:
        parked = (root / FROM).read_text().strip()
        alternates = (git / "objects" / "info" / "alternates").read_text().strip()
    except OSError:
        parked, alternates = "", ""
    usable = (
        tree.is_dir()
        and not tree.is_symlink()
        and git.is_dir()
        and alternates == str(mirror / "objects")  # the repository's URL did not change
    )
    if not usable or os.path.lexists(ctx.tree):
        if not usable:
            _remove(tree)
            _remove(git)
        return None
    try:
        os.rename(tree, ctx.tree)
        _remove(ctx.tree / ".git")  # whatever the build left there: never trusted
        os.rename(git, ctx.tree / ".git")
        _own(ctx.tree, _sandbox_uid(ctx))
        _all_racy(ctx.tree / ".git" / "index")
    except OSError as exc:
        _remove(ctx.tree)
        _remove(git)
        raise Refused(str(exc)) from None
    return parked or "?"


def _sandbox_uid(ctx: Context) -> int | None:
    if not sandbox.enabled(ctx.settings):
        return None
    return sandbox.uid_for(ctx.settings, ctx.deploy_id)


ACL_XATTRS = ("system.posix_acl_access", "system.posix_acl_default")


def _own(tree: Path, uid: int | None) -> None:
    """Every entry of ``tree`` owned by ``uid`` (None: its owner as it is), the symlinks
    themselves, never what they point to; every directory open to its owner, so the sandbox
    can rewrite and remove whatever the previous build left however it set modes.

    The chown also gives every entry a new ctime, so no file's status matches the trusted
    index any more and git compares each one with it by content: the proof of a clean tree
    never rests on timestamps a build could have arranged.

    An ACL a build set (a default one on a directory makes the next build's own files 0666
    there, and git sees no ACL) refuses the tree: ``OSError``, a fresh checkout follows."""

    def chown(path: str) -> None:
        if uid is not None:
            os.lchown(path, uid, uid)
        else:
            st = os.lstat(path)
            os.lchown(path, st.st_uid, st.st_gid)
        if not os.path.islink(path) and any(
            name.startswith(ACL_XATTRS) for name in os.listxattr(path, follow_symlinks=False)
        ):
            raise OSError(f"{path}: an ACL the build set")

    for folder, dirs, files in os.walk(tree):
        chown(folder)
        for name in (*dirs, *files):
            chown(os.path.join(folder, name))
        mode = stat.S_IMODE(os.lstat(folder).st_mode)
        if mode & 0o700 != 0o700:
            os.chmod(folder, mode | 0o700)


def _all_racy(index: Path) -> None:
    """The trusted index dated the first second of 1970: every entry is then "racily clean"
    to git (modified no earlier than the index was written), so git compares each file by
    content even where its size, mtime and ctime match. The new ctimes ``_own`` gives are not
    enough alone: git compares ctime to the second, and a deploy that follows within the
    second of the previous checkout would find a build's in-place edit (size and mtime kept)
    matching the index."""
    if index.is_file() and not index.is_symlink():
        os.utime(index, (1, 1))


def _remember(ctx: Context) -> None:
    """After the checkout, before any build: a copy of the tree's ``.git`` outside every
    sandbox, the one the next deploy will trust."""
    inner = ctx.tree / ".git"
    pending = _pending(ctx)
    if not inner.is_dir() or inner.is_symlink():
        return
    pending.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _remove(pending)
    shutil.copytree(inner, pending, symlinks=True)


def park(ctx: Context, status: str) -> None:
    """At the end of a deploy: a successful one's tree becomes the next one's start."""
    root, pending = slot(ctx), _pending(ctx)
    try:
        tree = ctx.tree
        if (
            status == DeployStatus.SUCCESS
            and ctx.kind == "deploy"
            and pending.is_dir()
            and tree.is_dir()
            and not tree.is_symlink()
        ):
            _remove(root / TREE)
            _remove(root / GIT)
            os.rename(tree, root / TREE)
            os.rename(pending, root / GIT)
            (root / FROM).write_text(f"{ctx.deploy_id}\n")
    finally:
        _remove(pending)
