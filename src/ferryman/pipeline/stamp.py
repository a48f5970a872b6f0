"""The static-asset version stamp, written into the built tree on the deploy host once the
build is done and the release is named (so every host gets the same bytes, in the manifest):

- ``version_file: public/version.txt``: a small file naming the release, its commit and ref;
- ``stamp_version_in: [public/index.html, …]``: every ``{VERSION}`` in those files becomes the
  release name, for cache busting (``app.js?v={VERSION}``).

The tree is the repository's and the build's: hostile. Every path is walked one component at
a time from the tree with ``O_NOFOLLOW`` (``openat``), so a committed symlink — as the file or
as any directory above it — is refused instead of followed out of the release, and a file is
replaced by a new one renamed over it, never written in place (a hard link to a file outside
is left alone). A retry or a config-only deploy ships its build as it was stamped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

from ferryman.errors import TaskFailed
from ferryman.pipeline.context import Context

STAGE = "version_stamp"
TOKEN = b"{VERSION}"
MAX_STAMPED = 16 * 1024 * 1024  # a file to stamp is read whole: bounded


async def run(ctx: Context) -> None:
    """Write the version file and stamp the listed files (nothing when neither is set)."""
    env = ctx.env
    if not env.version_file and not env.stamp_version_in:
        return
    commit = ctx.resolved.commit if ctx.resolved else ""
    await asyncio.to_thread(
        write_stamps,
        ctx.tree,
        ctx.release,
        version_text(ctx.release, commit, ctx.ref),
        env.version_file,
        list(env.stamp_version_in),
    )
    what = ([env.version_file] if env.version_file else []) + list(env.stamp_version_in)
    ctx.recorder.log(f"stamped {ctx.release} into {', '.join(what)}", stage=STAGE)


def version_text(release: str, commit: str, ref: str) -> bytes:
    """What the version file holds: ``KEY=value`` lines (a shell can source it)."""
    return f"VERSION={release}\nCOMMIT={commit}\nREF={ref}\n".encode()


def write_stamps(
    tree: Path, release: str, version: bytes, version_file: str | None, stamped: list[str]
) -> None:
    root = os.open(tree, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        if version_file:
            _replace(root, version_file, lambda _old: version, create=True)
        for rel in stamped:
            _replace(root, rel, lambda old: old.replace(TOKEN, release.encode()), create=False)
    finally:
        os.close(root)


def _refuse(rel: str, why: str) -> TaskFailed:
    return TaskFailed(f"version stamp: {rel}: {why}", stage=STAGE)


def _replace(root: int, rel: str, change: Callable[[bytes], bytes], *, create: bool) -> None:
    """Replace the file ``rel`` under ``root`` with ``change(old bytes)``: every directory
    on the way opened without following symlinks (created when ``create``), the file itself
    a regular file (or absent, when ``create``), the new one renamed over it."""
    parts = [p for p in rel.split("/") if p and p != "."]
    if not parts or any(p == ".." for p in parts):
        raise _refuse(rel, "not a path inside the release")
    fd = os.dup(root)
    try:
        for part in parts[:-1]:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
            try:
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                raise _refuse(rel, f"no directory {part!r} in the build") from None
            except OSError:  # ELOOP, ENOTDIR: a symlink or a file where a directory is
                raise _refuse(rel, f"{part!r} is a symlink or not a directory") from None
            os.close(fd)
            fd = nxt
        name = parts[-1]
        old, mode = _read(fd, name, rel, create)
        new = change(old)
        tmp = f".{name}.ferryman-stamp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=fd)
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=fd)
        try:
            os.write(out, new)
            os.fchmod(out, mode)
        finally:
            os.close(out)
        os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
    finally:
        os.close(fd)


def _read(fd: int, name: str, rel: str, create: bool) -> tuple[bytes, int]:
    """The file's bytes and mode; (b"", 0o644) for a file to create that is not there. It is
    opened first (never following a symlink, never waiting on a FIFO), then checked."""
    try:
        src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    except FileNotFoundError:
        if create:
            return b"", 0o644
        raise _refuse(rel, "not in the build") from None
    except OSError:  # ELOOP: a symlink
        raise _refuse(rel, "a symlink: refusing to write through it") from None
    try:
        st = os.fstat(src)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(rel, "not a regular file: refusing to write it")
        if create:
            return b"", stat.S_IMODE(st.st_mode)
        if st.st_size > MAX_STAMPED:
            raise _refuse(rel, f"larger than {MAX_STAMPED // (1024 * 1024)} MiB")
        chunks = []
        while chunk := os.read(src, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks), stat.S_IMODE(st.st_mode)
    finally:
        os.close(src)
