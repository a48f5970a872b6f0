"""Where a local target (``hosts: [local]``, the deploy host itself) may write: pure rules.

A local target's commands write its releases dir, its webroot's parent and its shared dir,
nothing else (``remote/local.py``). None of them may be the root, a system directory or
inside one, nor overlap Ferryman's own home (its database, keys, mirrors and workspaces) or
the sandbox's stage: a project file could otherwise aim a deploy, its pruning or a hook at
the server itself.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable

from ferryman.said import said

LOCAL = "local"  # the host name that means the deploy host itself
# Where the deploy host's own checks (http and tcp health checks, verify_served) reach a
# local target: `{HOST}` is this address, as it is a remote host's address.
REACHED_AT = "127.0.0.1"

# Never written by a local target, nor anything inside them.
SYSTEM = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/sys",
    "/usr",
    "/var/lib",
    "/var/log",
    "/var/spool",
    "/var/cache",
    "/var/backups",
    "/var/mail",
    "/snap",
    "/lost+found",
)
# Writable only below them, never themselves: the parent of a webroot /srv/site is /srv,
# which would make every other directory of /srv writable.
SHALLOW = ("/", "/srv", "/var", "/home", "/opt", "/mnt", "/media", "/tmp", "/var/www", "/data")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def problem(path: str, guarded: Iterable[str] = ()) -> str | None:
    """Why ``path`` (absolute, normalised) may not be written by a local target, or None.
    ``guarded``: Ferryman's own directories (its home, the sandbox stage)."""
    path = posixpath.normpath(path)
    if path in SHALLOW:
        return said(
            "%(path)s is too broad to give a project (use a directory of its own below it)",
            path=path,
        )
    for root in SYSTEM:
        if _inside(path, root):
            return said("%(path)s is a system directory (%(root)s)", path=path, root=root)
    for own in guarded:
        own = posixpath.normpath(own)
        if _inside(path, own) or _inside(own, path):
            return said("%(path)s overlaps Ferryman's own %(own)s", path=path, own=own)
    return None


def writable(webroot: str, releases: str, shared_dir: str) -> list[tuple[str, str]]:
    """(key, path) of every directory a local target of this environment writes."""
    return [
        ("releases", releases),
        ("webroot", posixpath.dirname(posixpath.normpath(webroot))),
        ("shared_dir", shared_dir),
    ]


def config_problems(webroot: str, releases: str, shared_dir: str) -> list[str]:
    """What the project file itself gets wrong for a local target (the home is checked
    when a deploy runs: the file does not know where the server's home is)."""
    out: list[str] = []
    for key, path in writable(webroot, releases, shared_dir):
        why = problem(path)
        if why and key == "webroot":
            out.append(said("webroot: the webroot's parent %(why)s", why=why))
        elif why and key == "releases":
            out.append(said("releases: %(why)s", why=why))
        elif why:
            out.append(said("shared_dir: %(why)s", why=why))
    return out
