"""What an environment claims on each of its hosts, and when two claims collide — pure.

An environment owns its webroot link, its releases dir and the shared paths it links into
each release (``<shared_dir>/<path>``). Two environments (of one project or two) whose claims
on the same host are equal or one inside the other would tread on each other: one's pruning
removes the other's live releases, one's switch replaces the other's site, both write one
``shared/uploads``. ``services/overlap.py`` refuses such a configuration when it is applied.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Claim:
    what: str  # "webroot", "releases dir", "shared path"
    path: str


def default_shared_dir(releases: str, project: str, env: str) -> str:
    """Where shared paths live when ``shared_dir`` is not given: beside the releases dir,
    one directory per project and environment (``/srv/releases/shared/<project>/<env>``)."""
    return posixpath.join(posixpath.dirname(releases.rstrip("/")), "shared", project, env)


def shared_dir(given: str | None, releases: str, project: str, env: str) -> str:
    return given or default_shared_dir(releases, project, env)


def claims(webroot: str, releases: str, shared_root: str, shared: Sequence[str]) -> list[Claim]:
    """Everything an environment writes on a host outside its releases: the webroot link,
    the releases dir, and each shared path (only those: a shared dir with no shared paths
    is never touched)."""
    found = [Claim("webroot", webroot), Claim("releases dir", releases)]
    found += [Claim("shared path", posixpath.join(shared_root, p)) for p in shared]
    return found


def overlap(a: str, b: str) -> bool:
    """The same path, or one inside the other (``/srv/a`` and ``/srv/a/b``; not ``/srv/ab``)."""
    a, b = a.rstrip("/") or "/", b.rstrip("/") or "/"
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def collisions(mine: Iterable[Claim], theirs: Iterable[Claim]) -> list[tuple[Claim, Claim]]:
    """Every pair of a claim of ``mine`` and one of ``theirs`` that overlap."""
    others = list(theirs)
    return [(a, b) for a in mine for b in others if overlap(a.path, b.path)]


def renamed_paths(data: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """Project file ``data`` with every path component ``old`` of its environments' webroot,
    releases and shared dir made ``new`` (``/srv/www/site`` → ``/srv/www/site-copy``): what
    a copy named ``new`` of project ``old`` writes, apart from the original's paths."""
    environments: dict[str, Any] = {}
    for name, env in (data.get("environments") or {}).items():
        changed = dict(env) if isinstance(env, dict) else env
        if isinstance(changed, dict):
            for key in ("webroot", "releases", "shared_dir"):
                value = changed.get(key)
                if isinstance(value, str):
                    parts = value.split("/")
                    changed[key] = "/".join(new if part == old else part for part in parts)
        environments[name] = changed
    return {**data, "environments": environments}
