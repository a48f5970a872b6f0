"""What the pipeline needs from a version control system, whatever it is."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ferryman.errors import StageTimeout, VcsError
from ferryman.process import run_local

LineCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class Resolved:
    """A ref resolved to one exact revision before anything is checked out."""

    ref: str
    commit: str  # full commit id (git) or "r<revision>" (svn)
    branch: str = ""
    tag: str = ""

    @property
    def short(self) -> str:
        return self.commit[:7]


@dataclass(frozen=True)
class Commit:
    id: str
    author: str
    date: str  # ISO 8601
    message: str  # first line


@dataclass(frozen=True)
class RefInfo:
    name: str
    commit: str
    date: str


@dataclass(frozen=True)
class RefList:
    branches: list[RefInfo]
    tags: list[RefInfo]
    commits: list[Commit]
    branch: str  # whose commits these are


@dataclass(frozen=True)
class Changes:
    commits: list[Commit]
    files: list[tuple[str, str]]  # (status letter, path): A added, M modified, D deleted, R...
    truncated: bool = False


class Vcs(Protocol):
    async def update(self) -> None:
        """Bring the local cache up to date (git: fetch the mirror; svn: nothing)."""

    async def resolve(self, ref: str) -> Resolved: ...

    async def pin(self, resolved: Resolved, commit: str) -> Resolved:
        """``resolved`` moved to exactly ``commit`` (checked to exist), labels kept."""

    async def refs(self, branch: str | None, limit: int) -> RefList:
        """Branches, tags (newest first) and recent commits of ``branch`` (or the default)."""

    async def changes(self, ref: str, old: str, new: str, limit: int) -> Changes:
        """Commits in ``new`` that ``old`` lacks, and the files changed between them."""

    async def export(self, resolved: Resolved, dest: Path) -> None:
        """Write the tree of exactly ``resolved`` into ``dest`` (which must not exist)."""

    async def reachable(self) -> None:
        """Raise ``VcsError`` unless the repository answers."""


@dataclass(frozen=True)
class SshOptions:
    key: str | None
    known_hosts: str | None

    def command(self) -> str:
        """An ``ssh`` command line for git/svn: our key and known_hosts, never blind-accept."""
        argv = [
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "ConnectTimeout=15",
        ]
        if self.key:
            argv += ["-i", self.key, "-o", "IdentitiesOnly=yes"]
        if self.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        return shlex.join(argv)


async def run_vcs(
    argv: list[str],
    *,
    env: dict[str, str],
    timeout: float,
    cwd: Path | None = None,
    on_line: LineCallback | None = None,
) -> str:
    """Run one git/svn command; raise ``VcsError`` with its stderr when it fails."""
    try:
        result = await run_local(
            argv, env=env, timeout=timeout, cwd=cwd, on_line=on_line, what=" ".join(argv[:2])
        )
    except StageTimeout as exc:
        raise VcsError(f"{argv[0]} {argv[1]}: {exc.message}") from None
    except OSError as exc:
        raise VcsError(f"cannot run {argv[0]}: {exc}") from None
    if result.exit_status != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()
        raise VcsError(
            f"{argv[0]} {argv[1]} failed (exit {result.exit_status})"
            + (f": {tail[-1][:300]}" if tail else ""),
            stderr_tail="\n".join(tail[-20:]),
        )
    return result.stdout
