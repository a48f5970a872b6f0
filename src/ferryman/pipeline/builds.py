"""Keeping the built tree of a failed deploy, so a retry ships exactly it without checking out
or building again (Spug's 补偿). Kept under ``$FERRYMAN_HOME/builds/deploy-<id>`` with what the
checkout resolved; the newest ``KEEP`` are kept, older ones removed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ferryman.config.settings import Settings
from ferryman.vcs.base import Resolved

KEEP = 5
INFO = "build.json"


def kept_dir(settings: Settings, deploy_id: int) -> Path:
    return settings.kept_builds / f"deploy-{deploy_id}"


def keep(settings: Settings, deploy_id: int, tree: Path, resolved: Resolved) -> None:
    """Move the built tree aside (called before the workspace is removed). Only a real
    directory: a step in the sandbox may have put a symlink in its place, and a retry copies
    what the kept tree holds into the release it ships."""
    if not _real_dir(tree):
        return
    dest = kept_dir(settings, deploy_id)
    settings.kept_builds.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir()
    tree.rename(dest / "tree")
    info = {
        "ref": resolved.ref,
        "commit": resolved.commit,
        "branch": resolved.branch,
        "tag": resolved.tag,
    }
    (dest / INFO).write_text(json.dumps(info))
    kept = sorted(
        (p for p in settings.kept_builds.iterdir() if p.name.startswith("deploy-")),
        key=lambda p: p.stat().st_mtime,
    )
    for old in kept[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)


def find(settings: Settings, deploy_id: int) -> tuple[Path, Resolved] | None:
    """The kept tree of ``deploy_id`` and what it was built from, if still there."""
    dest = kept_dir(settings, deploy_id)
    try:
        info = json.loads((dest / INFO).read_text())
    except (OSError, ValueError):
        return None
    if not _real_dir(dest / "tree"):
        return None
    return dest / "tree", Resolved(**info)


def _real_dir(path: Path) -> bool:
    """A directory itself, never a symlink to one."""
    return path.is_dir() and not path.is_symlink()


def reuse(tree: Path, into: Path) -> None:
    """A hard-linked copy of the kept tree (it stays intact for another retry)."""
    shutil.copytree(tree, into, symlinks=True, copy_function=_link)


def _link(src: str, dst: str) -> None:
    Path(dst).hardlink_to(src)
