"""Git: a cached bare mirror per project (fetch, never re-clone), exact commits into workspaces."""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import shlex
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ferryman.domain import validate
from ferryman.errors import NotFound, VcsError
from ferryman.vcs.base import (
    Changes,
    Commit,
    LineCallback,
    RefInfo,
    RefList,
    Resolved,
    SandboxRun,
    SshOptions,
    check_submodule_url,
    endpoint,
    git_protocols,
    inside_ssh,
    is_local,
    run_sandboxed,
    run_vcs,
    ssh_files,
)

TIMEOUT = 600.0
FILES_LIMIT = 2000
_HEX = re.compile(r"[0-9a-f]{7,64}")
_LOG_FORMAT = "%H%x1f%an%x1f%aI%x1f%s"
GITCONFIG = "/run/ferryman/gitconfig"


def local_path(url: str) -> Path:
    """The directory a ``file://`` URL or a local path names."""
    if "://" in url:
        return Path(unquote(urlsplit(url).path))
    return Path(url)


def safe_config(mirror: Path) -> str:
    """A global git config trusting exactly the mirror (owned by the server, not by us)."""
    value = str(mirror).replace("\\", "\\\\").replace('"', '\\"')
    return f'[safe]\n\tdirectory = "{value}"\n'


def checkout_script(
    mirror: Path,
    dest: Path,
    commit: str,
    url: str,
    submodule_protocols: str | None,
    ssh_command: str,
) -> str:
    """The sandboxed checkout: a ``--shared`` clone of the (read-only) mirror, exactly
    ``commit``, then submodules over ``submodule_protocols`` only (None: there are none)."""
    q = shlex.quote
    lines = [
        "set -eu",
        f"export GIT_CONFIG_GLOBAL={GITCONFIG} GIT_CONFIG_NOSYSTEM=1",
        "export GIT_TERMINAL_PROMPT=0 LC_ALL=C",
        f"GIT_ALLOW_PROTOCOL=file git clone --quiet --shared --no-checkout -- {q(str(mirror))} "
        + q(str(dest)),
        f"GIT_ALLOW_PROTOCOL=none git -C {q(str(dest))} checkout --quiet --detach {q(commit)}",
    ]
    if submodule_protocols is not None:
        lines += [
            f"git -C {q(str(dest))} remote set-url origin {q(url)}",
            f"GIT_ALLOW_PROTOCOL={q(submodule_protocols)} GIT_SSH_COMMAND={q(ssh_command)} "
            f"git -C {q(str(dest))} submodule update --init --recursive --quiet",
        ]
    return "\n".join(lines) + "\n"


# Settings a refreshed tree's git must use whatever its config says: stat checks that a build
# cannot fool (a changed file always has a new ctime), no hooks, no fsmonitor, no cache of
# untracked files.
_REFRESH_CONFIG = (
    "core.trustctime=true",
    "core.checkStat=default",
    "core.fsmonitor=false",
    "core.hooksPath=/dev/null",
    "core.untrackedCache=false",
    "core.sparseCheckout=false",
)


def refresh_script(dest: Path, commit: str) -> str:
    """Move a kept work tree (its ``.git`` the trusted copy made right after its own checkout)
    to exactly ``commit`` and make it clean: tracked files as in ``commit`` (those whose content
    or mode differs from the trusted index are written again), every untracked or ignored file
    and directory removed; then prove it (``git status`` says nothing), or fail."""
    q = shlex.quote
    settings = [arg for c in _REFRESH_CONFIG for arg in ("-c", c)]
    git = shlex.join(["git", "-C", str(dest), *settings])
    lines = [
        "set -eu",
        f"export GIT_CONFIG_GLOBAL={GITCONFIG} GIT_CONFIG_NOSYSTEM=1",
        "export GIT_TERMINAL_PROMPT=0 LC_ALL=C GIT_ALLOW_PROTOCOL=none",
        f'g() {{ {git} "$@"; }}',
        'refuse() { echo "not clean after the refresh: $1" >&2; exit 3; }',
        # the comparison below reads the tracked files through the attributes in the tree
        # (working-tree-encoding, eol): a .gitattributes the build left goes first, and the
        # tracked ones are written back as the trusted index has them
        "g clean -ffdxq",
        "g ls-files -z | grep -z -e '^\\.gitattributes$' -e '/\\.gitattributes$' "
        "| { g checkout-index -f -z --stdin || refuse 'its .gitattributes cannot be restored'; }",
        # a file whose stat changed (every one: the tree changed owner) is compared with the
        # trusted index by content, so that only files that differ are written again
        "g update-index -q --refresh >/dev/null || true",
        f"g checkout --quiet --force --detach {q(commit)}",
        "g clean -ffdxq",
        "left=$(g status --porcelain --ignored --untracked-files=all)",
        'if [ -n "$left" ]; then',
        '  printf "%s\\n" "$left" | head -5 >&2; refuse "git status lists the above"',
        "fi",
        f'test "$(g rev-parse HEAD)" = {q(commit)}',
        # what git never looks at: a gitlink's directory (a fresh checkout leaves it empty),
        # an entry named .git below the root, and modes other than a fresh checkout's (git
        # keeps only a file's executable bit, nothing of a directory's)
        "if g ls-files --stage | grep -q '^160000 '; then refuse 'the commit has a gitlink'; fi",
        f"cd -- {q(str(dest))}",
        "m=$(umask)",
        "plain=$(printf '%04o' $((0666 & ~m))) exec=$(printf '%04o' $((0777 & ~m)))",
        "odd=$(find . -mindepth 1 -path ./.git -prune -o \\( -name .git -o \\( -type f "
        '! -perm "$plain" ! -perm "$exec" \\) -o \\( -type d ! -perm "$exec" \\) \\) -print '
        "| head -5)",
        'if [ -n "$odd" ]; then printf "%s\\n" "$odd" >&2; refuse "modes or .git entries"; fi',
    ]
    return "\n".join(lines) + "\n"


def _commits(text: str) -> list[Commit]:
    out = []
    for line in text.splitlines():
        parts = line.split("\x1f")
        if len(parts) == 4:
            out.append(Commit(id=parts[0], author=parts[1], date=parts[2], message=parts[3]))
    return out


def _ref_infos(text: str) -> list[RefInfo]:
    out = []
    for line in text.splitlines():
        parts = line.split("\x1f")
        if len(parts) == 4:
            name, obj, peeled, date = parts
            out.append(RefInfo(name=name, commit=peeled or obj, date=date))
    return out


class GitRepo:
    def __init__(
        self,
        url: str,
        mirror: Path,
        ssh: SshOptions,
        on_line: LineCallback | None = None,
        timeout: float = TIMEOUT,
        allow_local: bool = False,
    ) -> None:
        self.url = url
        self.mirror = mirror
        self.ssh = ssh
        self.on_line = on_line
        self.timeout = timeout
        self.allow_local = allow_local

    @property
    def protocols(self) -> str:
        return git_protocols(self.url, self.allow_local)

    @property
    def env(self) -> dict[str, str]:
        return {
            "GIT_SSH_COMMAND": self.ssh.command(),
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ALLOW_PROTOCOL": self.protocols,
            "GIT_CONFIG_NOSYSTEM": "1",
            "LC_ALL": "C",
        }

    async def _git(self, *args: str, cwd: Path | None = None, protocols: str = "") -> str:
        env = self.env | ({"GIT_ALLOW_PROTOCOL": protocols} if protocols else {})
        return await run_vcs(
            ["git", *args], env=env, timeout=self.timeout, cwd=cwd, on_line=self.on_line
        )

    async def update(self) -> None:
        self.mirror.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        async with _file_lock(self.mirror.with_name(self.mirror.name + ".lock")):
            if not (self.mirror / "HEAD").exists():
                tmp = self.mirror.with_name(self.mirror.name + ".cloning")
                await asyncio.to_thread(_rmtree, tmp)
                await self._git(
                    "clone",
                    "--mirror",
                    "--quiet",
                    "--config",
                    "core.sharedRepository=0644",  # the sandbox reads it as another uid
                    "--",
                    self.url,
                    str(tmp),
                )
                os.replace(tmp, self.mirror)
                return
            # a git killed with its worker leaves its lock files, and every later fetch fails
            # on them; under this lock no git writes here (auto gc runs in the foreground)
            await asyncio.to_thread(_clear_stale_locks, self.mirror)
            await self._git("-C", str(self.mirror), "remote", "set-url", "origin", self.url)
            await self._git(
                "-C",
                str(self.mirror),
                "-c",
                "gc.autoDetach=false",
                "-c",
                "maintenance.autoDetach=false",
                "fetch",
                "--prune",
                "--quiet",
                "origin",
            )

    async def _commit_of(self, rev: str, missing: str) -> str:
        """The full commit id ``rev`` names in the mirror, or ``VcsError(missing)``."""
        try:
            out = await self._git(
                "-C",
                str(self.mirror),
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",
                f"{rev}^{{commit}}",
            )
        except VcsError:
            raise VcsError(missing) from None
        return out.strip()

    async def resolve(self, ref: str) -> Resolved:
        validate.ref(ref)
        commit = await self._commit_of(ref, f"ref {ref!r} not found in {self.url}")
        branch = tag = ""
        if await self._has(f"refs/heads/{ref}"):
            branch = ref
        elif await self._has(f"refs/tags/{ref}"):
            tag = ref
        return Resolved(ref=ref, commit=commit, branch=branch, tag=tag)

    async def pin(self, resolved: Resolved, commit: str) -> Resolved:
        if not _HEX.fullmatch(commit):
            raise VcsError(f"not a commit id: {commit!r}")
        full = await self._commit_of(commit, f"commit {commit} is no longer in {self.url}")
        return Resolved(ref=resolved.ref, commit=full, branch=resolved.branch, tag=resolved.tag)

    async def refs(self, branch: str | None, limit: int) -> RefList:
        """Read from the mirror (call ``update`` first)."""
        fields = "%(refname:short)%1f%(objectname)%1f%(*objectname)%1f%(creatordate:iso-strict)"
        heads = await self._git(
            "-C",
            str(self.mirror),
            "for-each-ref",
            "--sort=-committerdate",
            f"--format={fields}",
            "refs/heads",
        )
        tags = await self._git(
            "-C",
            str(self.mirror),
            "for-each-ref",
            "--sort=-creatordate",
            f"--format={fields}",
            "refs/tags",
        )
        if branch is None:
            head = await self._git("-C", str(self.mirror), "symbolic-ref", "--short", "HEAD")
            branch = head.strip()
        validate.ref(branch)
        if not await self._has(f"refs/heads/{branch}"):
            raise NotFound(f"no branch {branch!r} in {self.url}")
        log = await self._git(
            "-C",
            str(self.mirror),
            "log",
            f"--format={_LOG_FORMAT}",
            "-n",
            str(limit),
            f"refs/heads/{branch}",
            "--",
        )
        return RefList(
            branches=_ref_infos(heads), tags=_ref_infos(tags), commits=_commits(log), branch=branch
        )

    async def changes(self, ref: str, old: str, new: str, limit: int) -> Changes:
        for commit in (old, new):
            if commit and not _HEX.fullmatch(commit):
                raise VcsError(f"not a commit id: {commit!r}")
        git_dir = ["-C", str(self.mirror)]
        span = f"{old}..{new}" if old else new
        log = await self._git(
            *git_dir, "log", f"--format={_LOG_FORMAT}", "-n", str(limit + 1), span, "--"
        )
        commits = _commits(log)
        if old:
            diff = await self._git(
                *git_dir, "diff", "--name-status", "--no-renames", old, new, "--"
            )
            files = [
                (line.split("\t", 1)[0][:1], line.split("\t", 1)[1])
                for line in diff.splitlines()
                if "\t" in line
            ]
        else:
            tree = await self._git(*git_dir, "ls-tree", "-r", "--name-only", new, "--")
            files = [("A", line) for line in tree.splitlines() if line]
        truncated = len(commits) > limit or len(files) > FILES_LIMIT
        return Changes(commits=commits[:limit], files=files[:FILES_LIMIT], truncated=truncated)

    async def _has(self, name: str, kind: str = "ref") -> bool:
        """Whether the mirror has the ref ``name`` (or, ``kind="blob"``, the object)."""
        args = ["show-ref", "--verify", "--quiet", name]
        if kind == "blob":
            args = ["cat-file", "-e", name]
        try:
            await run_vcs(
                ["git", "-C", str(self.mirror), *args], env=self.env, timeout=self.timeout
            )
        except VcsError:
            return False
        return True

    async def submodules(self, commit: str) -> list[tuple[str, str]]:
        """(name, url) of the submodules ``.gitmodules`` declares at ``commit``, each checked
        against the repository's protocol (read from the mirror, never from a work tree)."""
        if not await self._has(f"{commit}:.gitmodules", kind="blob"):
            return []
        try:
            out = await run_vcs(
                [
                    "git",
                    "-C",
                    str(self.mirror),
                    "config",
                    "--blob",
                    f"{commit}:.gitmodules",
                    "--get-regexp",
                    r"^submodule\..*\.url$",
                ],
                env=self.env,
                timeout=self.timeout,
            )
        except VcsError:
            return []  # no url entries
        found = []
        for line in out.splitlines():
            key, _, url = line.partition(" ")
            name = key.removeprefix("submodule.").removesuffix(".url")
            check_submodule_url(name, url.strip(), self.url, self.allow_local)
            found.append((name, url.strip()))
        return found

    async def export(
        self, resolved: Resolved, dest: Path, sandboxed: SandboxRun | None = None
    ) -> None:
        submodules = await self.submodules(resolved.commit)
        if sandboxed is not None:
            await self._export_sandboxed(resolved, dest, submodules, sandboxed)
            return
        mirror, tree = str(self.mirror), str(dest)
        await self._git(
            "clone", "--quiet", "--shared", "--no-checkout", "--", mirror, tree, protocols="file"
        )
        await self._git(
            "-C", tree, "checkout", "--quiet", "--detach", resolved.commit, protocols="none"
        )
        if submodules:
            await self._git("-C", str(dest), "remote", "set-url", "origin", self.url)
            await self._git(
                "-C", str(dest), "submodule", "update", "--init", "--recursive", "--quiet"
            )

    async def refresh(
        self, resolved: Resolved, dest: Path, sandboxed: SandboxRun | None = None
    ) -> None:
        """Bring the kept tree at ``dest`` (see ``pipeline/parked_trees.py``) to exactly
        ``resolved``, clean; ``VcsError`` when that cannot be done or proven (the caller then
        checks out afresh). Only for commits without submodules."""
        script = refresh_script(dest, resolved.commit)
        files = {GITCONFIG: safe_config(self.mirror).encode()}
        if sandboxed is not None:
            await run_sandboxed(
                sandboxed, "refresh", script, network=False, readonly=(self.mirror,), files=files
            )
            return
        await run_vcs(
            ["bash", "-c", script.replace(GITCONFIG, "/dev/null")],
            env=self.env,
            timeout=self.timeout,
            on_line=self.on_line,
        )

    async def _export_sandboxed(
        self,
        resolved: Resolved,
        dest: Path,
        submodules: list[tuple[str, str]],
        sandboxed: SandboxRun,
    ) -> None:
        readonly = [self.mirror]
        files = {GITCONFIG: safe_config(self.mirror).encode()}
        if submodules:
            files |= ssh_files(self.ssh, endpoint(self.url))
            if self.allow_local:  # local submodules (and relative ones of a local repo)
                urls = [url for _, url in submodules if is_local(url)]
                if is_local(self.url):
                    urls.append(self.url)
                readonly += [p for p in {local_path(u) for u in urls} if p.is_absolute()]
        script = checkout_script(
            self.mirror,
            dest,
            resolved.commit,
            self.url,
            self.protocols if submodules else None,
            inside_ssh(self.ssh).command(),
        )
        await run_sandboxed(
            sandboxed,
            "checkout",
            script,
            network=bool(submodules),
            readonly=tuple(dict.fromkeys(readonly)),
            files=files,
        )

    async def reachable(self) -> None:
        await self._git("ls-remote", "--heads", "--", self.url)


# The lock files git writes beside a bare repository's own files while it changes them
_TOP_LOCKS = ("config.lock", "packed-refs.lock", "HEAD.lock", "shallow.lock", "FETCH_HEAD.lock")


def _clear_stale_locks(mirror: Path) -> None:
    """Remove the lock files a git that was killed left in ``mirror`` (only ever called
    while holding the mirror's flock, when no git is writing there)."""
    for name in _TOP_LOCKS:
        (mirror / name).unlink(missing_ok=True)
    for folder, _dirs, files in os.walk(mirror / "refs"):
        for name in files:
            if name.endswith(".lock"):
                os.unlink(os.path.join(folder, name))


class _file_lock:
    """An exclusive flock, waited for without blocking the event loop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    async def __aenter__(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                await asyncio.sleep(0.1)

    async def __aexit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
