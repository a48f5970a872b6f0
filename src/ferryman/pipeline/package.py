"""Packaging on the deploy host: the manifest of the built tree and tar packages of it.

The package is written once per distinct delta (usually one or two per deploy), then streamed
to every host from that single file.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import time
from pathlib import Path

import zstandard

from ferryman.commands.remote import Compression
from ferryman.domain.config_files import LIST_FILE
from ferryman.domain.manifest import MANIFEST_FILE, VERSION_FILE, Manifest, encode, excluded
from ferryman.errors import InternalError

# Never shipped from the built tree: git's own files, and the files Ferryman writes into every
# release and later acts on (a committed ``.ferryman-config`` would name what the next deploy
# deletes; a committed manifest or version file would lie about the release).
ALWAYS_EXCLUDED = ["/.git", "/" + MANIFEST_FILE, "/" + VERSION_FILE, "/" + LIST_FILE]


# Only rwx bits are shipped: a build cannot plant a setuid-root program on the hosts (the
# unpack runs as the deploy user, often root, and keeps the modes it is given).
PERMISSIONS = 0o777


def build_manifest(tree: Path, excludes: list[str]) -> Manifest:
    """Walk the built tree; skip excluded paths and anything that is not a file, dir or link."""
    patterns = [*excludes, *ALWAYS_EXCLUDED]
    manifest: Manifest = {}
    for dirpath, dirnames, filenames in os.walk(tree):
        rel_dir = os.path.relpath(dirpath, tree)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        kept = []
        for name in sorted(dirnames):
            rel = prefix + name
            if excluded(rel, patterns):
                continue
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                manifest[rel] = ("l", 0o777, os.readlink(full))
            else:
                manifest[rel] = ("d", stat.S_IMODE(st.st_mode) & PERMISSIONS, "")
                kept.append(name)
        dirnames[:] = kept
        for name in filenames:
            rel = prefix + name
            if excluded(rel, patterns):
                continue
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                manifest[rel] = ("l", 0o777, os.readlink(full))
            elif stat.S_ISREG(st.st_mode):
                with open(full, "rb") as fh:
                    digest = hashlib.file_digest(fh, "sha1").hexdigest()
                manifest[rel] = ("f", stat.S_IMODE(st.st_mode) & PERMISSIONS, digest)
    return manifest


def write_package(
    tree: Path,
    paths: list[str],
    manifest: Manifest,
    version_text: str,
    dest: Path,
    compression: Compression,
) -> int:
    """A tar of ``paths`` (from ``tree``), then the version file and the manifest, last.

    The manifest is the last member, so a release dir that has it was unpacked completely.
    zstd (level 3, all cores) when every host can unpack it: smaller than gzip -1 and several
    times cheaper to unpack on every host; gzip -1 otherwise; or plain tar.
    Returns the package size in bytes.
    """
    if compression == "zstd":
        with open(dest, "wb") as raw:
            compressor = zstandard.ZstdCompressor(level=3, threads=-1)
            with (
                compressor.stream_writer(raw, closefd=False) as out,
                tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar,
            ):
                _add_members(tar, tree, paths, manifest, version_text)
    else:
        mode = "w:gz" if compression == "gzip" else "w"
        kwargs = {"compresslevel": 1} if compression == "gzip" else {}
        with tarfile.open(dest, mode, format=tarfile.PAX_FORMAT, **kwargs) as tar:  # type: ignore[call-overload]
            _add_members(tar, tree, paths, manifest, version_text)
    return dest.stat().st_size


def _add_members(
    tar: tarfile.TarFile, tree: Path, paths: list[str], manifest: Manifest, version_text: str
) -> None:
    now = time.time()
    for rel in paths:
        full = os.path.join(tree, rel)
        st = os.lstat(full)
        if stat.S_ISREG(st.st_mode):  # never through a symlink put there since the lstat
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as fh:
                tar.addfile(_member(rel, os.fstat(fd), full), fh)
        else:
            tar.addfile(_member(rel, st, full))
    for name, data in (
        (VERSION_FILE, version_text.encode()),
        (MANIFEST_FILE, encode(manifest)),
    ):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        info.mtime = int(now)
        tar.addfile(info, io.BytesIO(data))


def _member(rel: str, st: os.stat_result, full: str) -> tarfile.TarInfo:
    """The tar header of one path of the tree, owned by root (uid and gid 0, no names) and
    with only its rwx bits (never setuid, setgid or sticky on the hosts). Made from the
    ``lstat`` alone: ``TarFile.gettarinfo`` also looks up the owner's user and group names
    for every file (a tenth of a first deploy's CPU on 5,000 files), which the package drops."""
    info = tarfile.TarInfo(rel)
    info.mode = stat.S_IMODE(st.st_mode) & PERMISSIONS
    info.mtime = int(st.st_mtime)
    if stat.S_ISREG(st.st_mode):
        info.size = st.st_size
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(full)
    else:  # the manifest holds only these three; the tree changed under the packaging
        raise InternalError(f"{rel}: no longer a file, a directory or a symlink")
    return info


def choose_compression(compress: bool, hosts_with_zstd: int, hosts: int) -> Compression:
    """zstd only when every host has it (one package serves them all), else gzip."""
    if not compress:
        return "none"
    return "zstd" if hosts and hosts_with_zstd == hosts else "gzip"
