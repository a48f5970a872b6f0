"""Subversion: ``svn export`` of a path at a revision. Refs: ``trunk``, ``branches/x``,
``tags/v1``, optionally pinned with ``@REV`` (``trunk@123``)."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

from ferryman.domain import validate
from ferryman.errors import ValidationError, VcsError
from ferryman.vcs.base import (
    Changes,
    Commit,
    LineCallback,
    RefInfo,
    RefList,
    Resolved,
    SshOptions,
    run_vcs,
)

TIMEOUT = 600.0
FILES_LIMIT = 2000


def _xml(text: str) -> ElementTree.Element:
    # The XML comes from our own svn client, not from a user.
    return ElementTree.fromstring(text)  # noqa: S314


def _log_entries(text: str) -> list[Commit]:
    return [
        Commit(
            id=f"r{entry.get('revision', '')}",
            author=entry.findtext("author", ""),
            date=entry.findtext("date", ""),
            message=(entry.findtext("msg", "") or "").strip().split("\n", 1)[0],
        )
        for entry in _xml(text).iter("logentry")
    ]


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

    async def pin(self, resolved: Resolved, commit: str) -> Resolved:
        rev = commit.removeprefix("r")
        if not rev.isdigit():
            raise VcsError(f"not an svn revision: {commit!r}")
        path, _ = self._split(resolved.ref)
        await self._svn("info", "--", f"{self.url}/{path}@{rev}")
        return Resolved(
            ref=resolved.ref, commit=f"r{rev}", branch=resolved.branch, tag=resolved.tag
        )

    async def refs(self, branch: str | None, limit: int) -> RefList:
        """``branches/*`` and ``tags/*`` of a standard layout (empty when absent), and the
        recent log of ``branch`` (a path such as ``trunk`` or ``branches/x``; default trunk)."""
        path = branch or "trunk"
        validate.ref(path)
        log = await self._svn("log", "--xml", "-l", str(limit), "--", f"{self.url}/{path}")
        return RefList(
            branches=await self._list_dir("branches"),
            tags=sorted(await self._list_dir("tags"), key=lambda r: r.date, reverse=True),
            commits=_log_entries(log),
            branch=path,
        )

    async def _list_dir(self, folder: str) -> list[RefInfo]:
        try:
            out = await self._svn("list", "--xml", "--", f"{self.url}/{folder}")
        except VcsError:
            return []
        infos = []
        for entry in _xml(out).iter("entry"):
            commit = entry.find("commit")
            infos.append(
                RefInfo(
                    name=f"{folder}/{entry.findtext('name', '')}",
                    commit=f"r{commit.get('revision', '')}" if commit is not None else "",
                    date=entry.findtext("commit/date", ""),
                )
            )
        return infos

    async def changes(self, ref: str, old: str, new: str, limit: int) -> Changes:
        path, _ = self._split(ref)
        url = f"{self.url}/{path}"
        new_rev = new.removeprefix("r")
        old_rev = old.removeprefix("r")
        if not new_rev.isdigit() or (old and not old_rev.isdigit()):
            raise VcsError(f"not svn revisions: {old!r}, {new!r}")
        if old:
            if int(old_rev) >= int(new_rev):
                return Changes(commits=[], files=[])
            log = await self._svn(
                "log",
                "--xml",
                "-l",
                str(limit + 1),
                "-r",
                f"{new_rev}:{int(old_rev) + 1}",
                "--",
                f"{url}@{new_rev}",
            )
            diff = await self._svn(
                "diff", "--summarize", "-r", f"{old_rev}:{new_rev}", "--", f"{url}@{new_rev}"
            )
            files = []
            for line in diff.splitlines():
                status, _, target = line.partition(" ")
                rel = target.strip().removeprefix(url).lstrip("/")
                if status and rel:
                    files.append((status[:1], rel))
        else:
            log = await self._svn("log", "--xml", "-l", str(limit + 1), "--", f"{url}@{new_rev}")
            tree = await self._svn("list", "-R", "--", f"{url}@{new_rev}")
            files = [("A", line) for line in tree.splitlines() if line and not line.endswith("/")]
        commits = _log_entries(log)
        truncated = len(commits) > limit or len(files) > FILES_LIMIT
        return Changes(commits=commits[:limit], files=files[:FILES_LIMIT], truncated=truncated)

    async def export(self, resolved: Resolved, dest: Path) -> None:
        path, _ = self._split(resolved.ref)
        rev = resolved.commit.removeprefix("r")
        await self._svn("export", "--quiet", "-r", rev, "--", f"{self.url}/{path}@{rev}", str(dest))

    async def reachable(self) -> None:
        await self._svn("info", "--", self.url)
