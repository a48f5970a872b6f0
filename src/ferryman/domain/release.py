"""Release names and the choice of which releases to prune — pure functions."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_NAME = re.compile(r"^\d{8}-\d{6}_[A-Za-z0-9._-]*_[A-Za-z0-9]+(-\d+)?$")


def sanitise_ref(ref: str) -> str:
    """``feature/login`` → ``feature-login``: only ``[A-Za-z0-9._-]`` survive, at most 60."""
    return _UNSAFE.sub("-", ref).strip("-.")[:60] or "ref"


def release_name(when: datetime, ref: str, commit: str) -> str:
    """``YYYYmmdd-HHMMSS_<ref>_<commit7>``, computed once per deploy, same on every host."""
    return f"{when:%Y%m%d-%H%M%S}_{sanitise_ref(ref)}_{sanitise_ref(commit)[:7]}"


def is_release_name(name: str) -> bool:
    return bool(_NAME.match(name))


def choose_prunable(
    on_host: Iterable[str],
    keep: int,
    live: str | None,
    previous_good: str | None,
    complete: set[str],
) -> list[str]:
    """Which release directories on a host to remove so that at most ``keep`` remain.

    Never the live release, never the previous good one. Directories that are not complete
    releases (failed or unfinished transfers) go first, then the oldest complete ones.
    Release names sort by time, so "oldest" is lexical order.
    """
    names = sorted(set(on_host))
    protected = {n for n in (live, previous_good) if n}
    unfinished = [n for n in names if n not in complete and n not in protected]
    good = [n for n in names if n in complete and n not in protected]
    remove = list(unfinished)
    remaining = len(names) - len(remove)
    for name in good:  # oldest first
        if remaining <= keep:
            break
        remove.append(name)
        remaining -= 1
    return remove


def previous_release(history: Sequence[str], current: str | None) -> str | None:
    """The newest release older than ``current`` in ``history`` (names, any order)."""
    older = sorted(n for n in history if current is None or n < current)
    return older[-1] if older else None
