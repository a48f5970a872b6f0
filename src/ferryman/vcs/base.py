"""What the pipeline needs from a version control system, whatever it is."""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import shlex
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from ferryman.errors import StageTimeout, VcsError
from ferryman.process import LocalResult, run_local

LineCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class Resolved:
    """A ref resolved to one exact revision before anything is checked out."""

    ref: str
    commit: str  # full commit id (git) or "r<revision>" (svn)
    branch: str = ""
    tag: str = ""


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


class SandboxRun(Protocol):
    """Runs a bash script in the deploy's sandbox (``pipeline/checkout.py`` makes one)."""

    def __call__(
        self,
        script: str,
        *,
        network: bool,
        readonly: tuple[Path, ...],
        files: Mapping[str, bytes],
    ) -> Awaitable[LocalResult]: ...


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

    async def export(
        self, resolved: Resolved, dest: Path, sandboxed: SandboxRun | None = None
    ) -> None:
        """Write the tree of exactly ``resolved`` into ``dest`` (which must not exist); with
        ``sandboxed``, everything that reads repository content runs in the sandbox."""

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


# --- which URLs a repository, a submodule or an external may use ---------------------------

_SCP_LIKE = re.compile(r"^(?:[^@/:]+@)?[^/:]+:(?!//)")
_SCHEMES = {"ssh": "ssh", "git+ssh": "ssh", "ssh+git": "ssh", "https": "https", "http": "http"}
_SCHEMES |= {"git": "git", "file": "file", "svn": "svn", "svn+ssh": "svn+ssh"}
LOCAL_HINT = "a superuser allows them with `ferryman space limits SPACE --allow-local-repos`"


def url_protocol(url: str) -> str:
    """``ssh``, ``https``, ``http``, ``git``, ``file``, ``svn``, ``svn+ssh``, or the unknown
    scheme / transport helper as written (``ext``), which nothing allows."""
    if "://" in url:
        scheme = url.split("://", 1)[0].lower()
        return _SCHEMES.get(scheme, scheme)
    if "::" in url:
        return url.split("::", 1)[0].lower()
    if _SCP_LIKE.match(url):
        return "ssh"
    return "file"  # a local path


def is_local(url: str) -> bool:
    return url_protocol(url) == "file"


def check_repo_url(url: str, allow_local: bool, space: str = "") -> None:
    """Refuse a local repository unless the space may use them, and unknown transports."""
    protocol = url_protocol(url)
    if protocol == "file" and not allow_local:
        where = f" in space {space!r}" if space else ""
        raise VcsError(f"local repositories ({url}) are refused{where}; {LOCAL_HINT}")
    if protocol not in _SCHEMES.values():
        raise VcsError(f"repository {url!r}: the {protocol!r} transport is not allowed")


def git_protocols(url: str, allow_local: bool) -> str:
    """``GIT_ALLOW_PROTOCOL`` for a repository: its own protocol only (``file`` too where the
    space may use local repositories)."""
    protocol = url_protocol(url)
    allowed = ["http", "https"] if protocol == "http" else [protocol]
    if allow_local and "file" not in allowed:
        allowed.append("file")
    return ":".join(allowed)


_DEFAULT_PORTS = {"ssh": 22, "https": 443, "http": 80, "git": 9418, "svn": 3690, "svn+ssh": 22}


def endpoint(url: str) -> tuple[str, int] | None:
    """(host, port) a remote URL connects to (``user@`` dropped), None for a local one."""
    protocol = url_protocol(url)
    if protocol == "file":
        return None
    if "://" in url:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return ("", 0)
        return (parts.hostname or "", port or _DEFAULT_PORTS.get(protocol, 0))
    host = url.split(":", 1)[0].rpartition("@")[2]  # scp-like user@host:path
    return (host.strip("[]").lower(), 22)


def check_submodule_url(name: str, url: str, repo_url: str, allow_local: bool) -> None:
    """A submodule may use the repository's own protocol **and host** (relative URLs
    resolve against it), and ``file`` where the space allows local repositories; anything
    else is refused: the checkout holds the space's key, which opens the space's servers."""
    if url.startswith(("./", "../")):
        return
    protocol = url_protocol(url)
    if protocol not in git_protocols(repo_url, allow_local).split(":"):
        why = (
            f"local paths are refused; {LOCAL_HINT}"
            if protocol == "file"
            else f"only {url_protocol(repo_url)} (the repository's own protocol) is allowed"
        )
        raise VcsError(f"submodule {name!r} points at {url!r}: {why}")
    theirs, ours = endpoint(url), endpoint(repo_url)
    if theirs is not None and theirs != ours:
        where = f"{ours[0]}:{ours[1]}" if ours else "local"
        raise VcsError(
            f"submodule {name!r} points at {url!r}: only the repository's own host "
            f"({where}) is allowed"
        )


def known_hosts_for(text: bytes, host: str, port: int) -> bytes:
    """The lines of a known_hosts text that vouch for ``host:port`` (plain or hashed names):
    inside the sandbox ssh can then verify no other host, so a submodule, however nested,
    cannot make the checkout log in elsewhere with the space's key."""
    names = {host if port == 22 else f"[{host}]:{port}"}
    kept = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3 or line.startswith(b"#"):
            continue
        marker = fields[0].decode(errors="replace")
        if marker.startswith("@"):
            continue  # @cert-authority / @revoked: not ours to carry
        if any(_names_match(pattern, names) for pattern in marker.split(",")):
            kept.append(line)
    return b"".join(line + b"\n" for line in kept)


def _names_match(pattern: str, names: set[str]) -> bool:
    if pattern.startswith("|1|"):
        try:
            _, _, salt, digest = pattern.split("|")
            key = base64.b64decode(salt)
            return any(
                hmac.compare_digest(
                    base64.b64encode(hmac.new(key, n.encode(), "sha1").digest()).decode(),
                    digest,
                )
                for n in names
            )
        except (ValueError, binascii.Error):
            return False
    return pattern.lower() in names


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
            f"{argv[0]} {argv[1]} failed (exit {result.exit_status})" + _cause(tail),
            stderr_tail="\n".join(tail[-20:]),
        )
    return result.stdout


async def run_sandboxed(
    sandboxed: SandboxRun,
    what: str,
    script: str,
    *,
    network: bool,
    readonly: tuple[Path, ...] = (),
    files: Mapping[str, bytes] | None = None,
) -> None:
    """Run a checkout script in the sandbox; raise ``VcsError`` with its stderr when it fails."""
    try:
        result = await sandboxed(script, network=network, readonly=readonly, files=files or {})
    except StageTimeout as exc:
        raise VcsError(f"{what}: {exc.message}") from None
    if result.exit_status != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()
        raise VcsError(
            f"{what} failed (exit {result.exit_status})" + _cause(tail),
            stderr_tail="\n".join(tail[-20:]),
        )


# what git prints after any failure to reach a remote: never the cause
_GIT_BOILERPLATE = (
    "Could not read from remote repository",
    "Please make sure you have the correct access rights",
    "and the repository exists",
)


def _cause(lines: list[str]) -> str:
    """``": <the line that says why>"`` of a failed command's output: its last line that is
    not git's closing boilerplate ("…and the repository exists."), so the refusal reads
    "Connection refused" or "does not appear to be a git repository"; "" when it printed
    nothing."""
    telling = [
        line.strip()
        for line in lines
        if line.strip() and not any(text in line for text in _GIT_BOILERPLATE)
    ]
    chosen = telling[-1] if telling else (lines[-1].strip() if lines else "")
    return f": {chosen[:300]}" if chosen else ""


def ssh_files(ssh: SshOptions, only: tuple[str, int] | None = None) -> dict[str, bytes]:
    """The key and known hosts a sandboxed checkout needs, as contents (read here, as the
    server), for ``SshOptions(SSH_KEY, KNOWN_HOSTS)`` inside; with ``only``, the known hosts
    of that one ``(host, port)``."""
    from ferryman.commands.sandbox import KNOWN_HOSTS, SSH_KEY

    files: dict[str, bytes] = {}
    if ssh.key and Path(ssh.key).is_file():
        files[SSH_KEY] = Path(ssh.key).read_bytes()
    known = b""
    for path in (ssh.known_hosts or "").split():
        try:
            known += Path(path).read_bytes().rstrip(b"\n") + b"\n"
        except OSError:
            continue
    files[KNOWN_HOSTS] = known if only is None else known_hosts_for(known, *only)
    return files


def inside_ssh(ssh: SshOptions) -> SshOptions:
    from ferryman.commands.sandbox import KNOWN_HOSTS, SSH_KEY

    has_key = bool(ssh.key) and Path(str(ssh.key)).is_file()
    return SshOptions(key=SSH_KEY if has_key else None, known_hosts=KNOWN_HOSTS)
