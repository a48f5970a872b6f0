"""Release manifests and the delta between two of them — pure functions.

A manifest maps every path in a release (relative, ``/``-separated) to ``(kind, mode, digest)``:
kind ``f`` file (digest = sha1 of content), ``l`` symlink (digest = target), ``d`` directory.
Each release carries its manifest as ``.ferryman-manifest``; the delta against the release a host
already has decides which files cross the wire and which become hard links.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fnmatch import fnmatchcase

MANIFEST_FILE = ".ferryman-manifest"
VERSION_FILE = ".ferryman-release"

Entry = tuple[str, int, str]
Manifest = dict[str, Entry]


def encode(manifest: Manifest) -> bytes:
    return json.dumps({"version": 1, "entries": manifest}, sort_keys=True).encode()


def decode(data: bytes) -> Manifest:
    raw = json.loads(data)
    if not isinstance(raw, dict) or raw.get("version") != 1:
        raise ValueError("unknown manifest format")
    return {path: (e[0], int(e[1]), str(e[2])) for path, e in raw["entries"].items()}


@dataclass(frozen=True)
class Delta:
    """What to do to a hard-linked copy of the base release to turn it into the new one."""

    delete: list[str]  # paths to remove first (gone, or changed: a fresh inode follows)
    send: list[str]  # paths to ship in the package, parents before children


def diff(base: Manifest, new: Manifest) -> Delta:
    """Changed or new entries are sent; removed or changed non-directories are deleted first.

    A changed file is deleted before it is unpacked so that it gets a fresh inode: the hard link
    into the base release is broken and the base release is never modified.
    """
    delete: list[str] = []
    send: list[str] = []
    for path in sorted(base):
        old = base[path]
        now = new.get(path)
        if now is None or (now != old and not (old[0] == "d" and now[0] == "d")):
            delete.append(path)
    for path in sorted(new):
        if new[path] != base.get(path):
            send.append(path)
    # Deleting a directory deletes its children: drop children already covered.
    pruned: list[str] = []
    for path in delete:
        if pruned and path.startswith(pruned[-1] + "/"):
            continue
        pruned.append(path)
    return Delta(delete=pruned, send=send)


def excluded(path: str, patterns: list[str]) -> bool:
    """rsync-like: a pattern without ``/`` matches any path component; with ``/`` it is anchored
    at the release root. A trailing ``/`` is ignored (directories match by name)."""
    parts = path.split("/")
    for raw in patterns:
        pattern = raw.rstrip("/")
        if "/" in pattern:
            anchored = pattern.lstrip("/")
            depth = anchored.count("/") + 1
            if fnmatchcase("/".join(parts[:depth]), anchored):
                return True
        elif any(fnmatchcase(part, pattern) for part in parts):
            return True
    return False
