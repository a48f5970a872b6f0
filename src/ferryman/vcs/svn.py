"""Subversion: ``svn export`` of a path at a revision. Refs: ``trunk``, ``branches/x``,
``tags/v1``, optionally pinned with ``@REV`` (``trunk@123``)."""

from __future__ import annotations

from pathlib import Path

from ferryman.domain import validate
from ferryman.errors import ValidationError, VcsError
from ferryman.vcs.base import LineCallback, Resolved, SshOptions, run_vcs

TIMEOUT = 600.0


class SvnRepo:
    def __init__(
        self,
        url: str,
        ssh: SshOptions,
        on_line: LineCallback | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        self.url = url.rstrip("/")
        self.ssh = ssh
        self.on_line = on_line
        self.timeout = timeout

    @property
    def env(self) -> dict[str, str]:
        return {"SVN_SSH": self.ssh.command(), "LC_ALL": "C"}

    async def _svn(self, *args: str) -> str:
        return await run_vcs(
            ["svn", args[0], "--non-interactive", *args[1:]],
            env=self.env,
            timeout=self.timeout,
            on_line=self.on_line,
        )

    async def update(self) -> None:
        return None

    def _split(self, ref: str) -> tuple[str, str]:
        validate.ref(ref)
        path, _, rev = ref.partition("@")
        if rev and not rev.isdigit():
            raise ValidationError(f"invalid svn ref {ref!r}: the revision after @ must be a number")
        return path, rev or "HEAD"

    async def resolve(self, ref: str) -> Resolved:
        path, rev = self._split(ref)
        try:
            out = await self._svn(
                "info", "--show-item", "last-changed-revision", "--", f"{self.url}/{path}@{rev}"
            )
        except VcsError as exc:
            raise VcsError(f"svn path {ref!r} not found in {self.url}: {exc.message}") from None
        revision = out.strip()
        if not revision.isdigit():
            raise VcsError(f"svn gave no revision for {ref!r}")
        parts = path.split("/")
        branch = tag = ""
        if parts[0] == "tags" and len(parts) > 1:
            tag = parts[1]
        elif parts[0] == "branches" and len(parts) > 1:
            branch = parts[1]
        else:
            branch = path
        return Resolved(ref=ref, commit=f"r{revision}", branch=branch, tag=tag)

    async def export(self, resolved: Resolved, dest: Path) -> None:
        path, _ = self._split(resolved.ref)
        rev = resolved.commit.removeprefix("r")
        await self._svn("export", "--quiet", "-r", rev, "--", f"{self.url}/{path}@{rev}", str(dest))

    async def reachable(self) -> None:
        await self._svn("info", "--", self.url)
