"""Release manifests and the delta between two of them — pure functions.

A manifest maps every path in a release (relative, ``/``-separated) to ``(kind, mode, digest)``:
kind ``f`` file (digest = sha1 of content), ``l`` symlink (digest = target), ``d`` directory.
Each release carries its manifest as ``.ferryman-manifest``; the delta against the release a host
already has decides which files cross the wire and which become hard links.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from ferryman.domain.config_files import LIST_FILE as CONFIG_LIST

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


# --- a release on a host against its manifest -------------------------------------------------

# What a host listing may hold that the manifest never does: Ferryman's own files, written into
# every release by the deploy itself (``.ferryman-config`` names the config files it wrote).
OWN_FILES = frozenset({MANIFEST_FILE, VERSION_FILE, CONFIG_LIST})
UNREADABLE = "?"  # the digest of a file the host could not read
KINDS = {"f": "file", "d": "directory", "l": "symlink"}


@dataclass(frozen=True)
class Damage:
    """How a release on a host differs from its manifest.

    ``missing`` and ``changed`` (kind, content or link target; ``(path, what)``) make it
    damaged: serving it, rolling back to it or copying it into a new release is wrong.
    ``extra`` entries (a hook's cache, a file dropped in by hand) and ``modes`` (a hook's
    ``chmod``) are reported, but a release with only those is complete.
    """

    missing: tuple[str, ...] = ()
    changed: tuple[tuple[str, str], ...] = ()
    extra: tuple[str, ...] = ()
    modes: tuple[str, ...] = ()

    @property
    def damaged(self) -> bool:
        return bool(self.missing or self.changed)

    def summary(self, cap: int = 5) -> str:
        """One short line: what is wrong, at most ``cap`` paths per kind of problem (an entry
        inside a directory already named is counted, not named)."""
        named: set[str] = set()  # shared: a directory now a link names what was in it
        parts = [
            _part("changed", [(p, f"{p} ({what})") for p, what in self.changed], cap, named),
            _part("missing", [(p, p) for p in self.missing], cap, named),
        ]
        return "; ".join(p for p in parts if p)

    def notes(self, cap: int = 5) -> str:
        """The same for what does not make it damaged (extra entries, changed modes)."""
        parts = [
            _part("extra", [(p, p) for p in self.extra], cap, set()),
            _part("with another mode", [(p, p) for p in self.modes], cap, set()),
        ]
        return "; ".join(p for p in parts if p)


def _part(label: str, items: Sequence[tuple[str, str]], cap: int, named: set[str]) -> str:
    """``N label: a (+k inside), b and M more``: at most ``cap`` paths, an entry inside a
    directory already named counted with it (``N label inside d`` when all are)."""
    if not items:
        return ""
    tops: dict[str, str] = {}  # path -> its text
    inside: dict[str, int] = {}  # named path -> how many of ``items`` are inside it
    for path, text in items:
        holder = next((p for p in _parents(path) if p in named), None)
        if holder is None:
            named.add(path)
            tops[path] = text
        else:
            inside[holder] = inside.get(holder, 0) + 1
    if not tops:
        return f"{len(items)} {label} inside " + ", ".join(inside)
    shown = [
        text + (f" (+{inside[path]} inside)" if path in inside else "")
        for path, text in list(tops.items())[:cap]
    ]
    more = len(tops) - len(shown)
    return f"{len(items)} {label}: " + ", ".join(shown) + (f" and {more} more" if more else "")


def _parents(path: str) -> list[str]:
    """``a/b/c`` → ``a/b``, ``a`` (for a relative path; ``/`` is never a parent)."""
    out = []
    parent = posixpath.dirname(path)
    while parent and parent not in out and parent != "/":
        out.append(parent)
        parent = posixpath.dirname(parent)
    return out


def _plain(path: str) -> bool:
    """A path inside the release: relative, no empty, ``.`` or ``..`` component."""
    return all(part not in ("", ".", "..") for part in path.split("/"))


def compare(
    expected: Manifest,
    found: Mapping[str, Entry],
    *,
    config: Sequence[str] = (),
    shared_dir: str = "",
) -> Damage:
    """``found`` (a host's listing of a release: kind, mode, sha1 or link target per path)
    against the release's manifest.

    Ferryman's own entries never count: its files (``OWN_FILES``), the config files the
    deploy wrote (``config``, from ``.ferryman-config``; one that is gone *is* missing), a
    shared path turned into a link to ``shared_dir`` (and what the manifest had under it),
    and the directories made to hold those.
    """
    shared = {
        path
        for path, (kind, _mode, target) in found.items()
        if kind == "l" and shared_dir and target == posixpath.join(shared_dir, path)
    }
    config = [p for p in config if _plain(p)]  # a list an old release planted names others
    ours = set(OWN_FILES) | set(config) | shared
    holders = {parent for path in ours for parent in _parents(path)}

    def under_shared(path: str) -> bool:
        return path in shared or any(parent in shared for parent in _parents(path))

    missing: list[str] = []
    changed: list[tuple[str, str]] = []
    modes: list[str] = []
    for path in sorted(expected):
        if path in OWN_FILES or (shared and under_shared(path)):
            continue
        want = expected[path]
        have = found.get(path)
        if have is None:
            missing.append(path)
            continue
        what = _difference(want, have)
        if what:
            changed.append((path, what))
        elif want[0] != "l" and want[1] != have[1] & (0o777 if want[0] == "d" else 0o7777):
            modes.append(path)  # a file turned setuid counts; a setgid directory does not
    missing += sorted(p for p in config if p not in found)
    extra = sorted(
        path
        for path, entry in found.items()
        if path not in expected and path not in ours and not (entry[0] == "d" and path in holders)
    )
    return Damage(tuple(missing), tuple(changed), tuple(extra), tuple(modes))


def _difference(want: Entry, have: Entry) -> str:
    if want[0] != have[0]:
        return f"{KINDS.get(want[0], want[0])} is now a {KINDS.get(have[0], 'special file')}"
    if want[0] == "f" and have[2] == UNREADABLE:
        return "unreadable"
    if want[0] == "f" and want[2] != have[2]:
        return "content"
    if want[0] == "l" and want[2] != have[2]:
        return "link target"
    return ""
