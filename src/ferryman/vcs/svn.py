"""Subversion: ``svn export`` of a path at a revision. Refs: ``trunk``, ``branches/x``,
``tags/v1``, optionally pinned with ``@REV`` (``trunk@123``)."""

from __future__ import annotations

import shlex
from pathlib import Path
from urllib.parse import unquote, urlsplit
from xml.etree import ElementTree

from ferryman.domain import validate
from ferryman.domain.validate import is_digits
from ferryman.errors import ValidationError, VcsError
from ferryman.vcs.base import (
    Changes,
    Commit,
    LineCallback,
    RefInfo,
    RefList,
    Resolved,
    SandboxRun,
    SshOptions,
    inside_ssh,
    run_sandboxed,
    run_vcs,
    ssh_files,
    url_protocol,
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


def external_urls(text: str) -> list[str]:
    """The URL of each ``svn:externals`` definition (either order: ``URL dir`` or ``dir URL``;
    relative forms ``^/``, ``//``, ``/``, ``../`` kept as written)."""
    urls = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            tokens = shlex.split(line)
        except ValueError:
            tokens = line.split()
        words = [t for t in tokens if not t.startswith("-r")]
        candidates = [t for t in words if "://" in t or t.startswith(("^/", "//", "../"))]
        if not candidates and words and words[0].startswith("/"):
            candidates = [words[0]]  # server-root relative
        urls.append(candidates[0] if candidates else line)
    return urls


def check_external(url: str, repo_url: str, allow_local: bool) -> None:
    """An external may stay in the repository's server: relative forms, or the same scheme
    and host (``file`` only where the space allows local repositories)."""
    if url.startswith(("^/", "../")) or (url.startswith("/") and not url.startswith("//")):
        return
    repo = urlsplit(repo_url)
    target = urlsplit(f"{repo.scheme}:{url}" if url.startswith("//") else url)
    if "://" not in url and not url.startswith("//"):
        raise VcsError(f"svn:externals entry {url!r} cannot be read: refused")
    if target.scheme.lower() == "file" and not allow_local:
        raise VcsError(
            f"svn:externals points at {url!r}: local paths are refused; a superuser allows "
            "them with `ferryman space limits SPACE --allow-local-repos`"
        )
    same = target.scheme.lower() == repo.scheme.lower() and target.netloc == repo.netloc
    if not same:
        raise VcsError(
            f"svn:externals points at {url!r}: only {repo.scheme}://{repo.netloc} "
            "(the repository's own server) is allowed"
        )


def repository_root(url: str) -> Path | None:
    """For a ``file://`` URL: the local repository's root (the dir holding ``format`` and
    ``db``), to bind read-only into the sandbox."""
    if url_protocol(url) != "file":
        return None
    path = Path(unquote(urlsplit(url).path)) if "://" in url else Path(url)
    for candidate in (path, *path.parents):
        if (candidate / "format").is_file() and (candidate / "db").is_dir():
            return candidate
    return None


class SvnRepo:
    def __init__(
        self,
        url: str,
        ssh: SshOptions,
        on_line: LineCallback | None = None,
        timeout: float = TIMEOUT,
        allow_local: bool = False,
    ) -> None:
        self.url = url.rstrip("/")
        self.ssh = ssh
        self.on_line = on_line
        self.timeout = timeout
        self.allow_local = allow_local

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
        if rev and not is_digits(rev):
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
        if not is_digits(revision):
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
        if not is_digits(rev):
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
        if not is_digits(new_rev) or (old and not is_digits(old_rev)):
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

    async def check_externals(self, url: str, rev: str) -> None:
        """Refuse the export when any ``svn:externals`` below ``url@rev`` leaves the server."""
        argv = ["svn", "propget", "--non-interactive", "-R", "--xml", "svn:externals", "--"]
        out = await run_vcs(
            [*argv, f"{url}@{rev}"],
            env=self.env,
            timeout=self.timeout,
        )
        for prop in _xml(out).iter("property"):
            for external in external_urls(prop.text or ""):
                check_external(external, self.url, self.allow_local)

    async def export(
        self, resolved: Resolved, dest: Path, sandboxed: SandboxRun | None = None
    ) -> None:
        path, _ = self._split(resolved.ref)
        rev = resolved.commit.removeprefix("r")
        url = f"{self.url}/{path}@{rev}"
        await self.check_externals(f"{self.url}/{path}", rev)
        if sandboxed is None:
            await self._svn("export", "--quiet", "-r", rev, "--", url, str(dest))
            return
        inside = inside_ssh(self.ssh)
        q = shlex.quote
        script = (
            f"set -eu\nexport SVN_SSH={q(inside.command())} LC_ALL=C\n"
            f"svn export --non-interactive --quiet -r {q(rev)} -- {q(url)} {q(str(dest))}\n"
        )
        root = repository_root(self.url) if self.allow_local else None
        await run_sandboxed(
            sandboxed,
            "svn export",
            script,
            network=root is None,
            readonly=(root,) if root is not None else (),
            files=ssh_files(self.ssh),
        )

    async def reachable(self) -> None:
        await self._svn("info", "--", self.url)
