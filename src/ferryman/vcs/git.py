"""Git: a cached bare mirror per project (fetch, never re-clone), exact commits into workspaces."""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

from ferryman.domain import validate
from ferryman.errors import VcsError
from ferryman.vcs.base import LineCallback, Resolved, SshOptions, run_vcs

TIMEOUT = 600.0


class GitRepo:
    def __init__(
        self,
        url: str,
        mirror: Path,
        ssh: SshOptions,
        on_line: LineCallback | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        self.url = url
        self.mirror = mirror
        self.ssh = ssh
        self.on_line = on_line
        self.timeout = timeout

    @property
    def env(self) -> dict[str, str]:
        return {
            "GIT_SSH_COMMAND": self.ssh.command(),
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ALLOW_PROTOCOL": "file:git:http:https:ssh",
            "GIT_CONFIG_NOSYSTEM": "1",
            "LC_ALL": "C",
        }

    async def _git(self, *args: str, cwd: Path | None = None) -> str:
        return await run_vcs(
            ["git", *args], env=self.env, timeout=self.timeout, cwd=cwd, on_line=self.on_line
        )

    async def update(self) -> None:
        self.mirror.parent.mkdir(parents=True, exist_ok=True)
        async with _file_lock(self.mirror.with_name(self.mirror.name + ".lock")):
            if not (self.mirror / "HEAD").exists():
                tmp = self.mirror.with_name(self.mirror.name + ".cloning")
                await asyncio.to_thread(_rmtree, tmp)
                await self._git("clone", "--mirror", "--quiet", "--", self.url, str(tmp))
                os.replace(tmp, self.mirror)
                return
            await self._git("-C", str(self.mirror), "remote", "set-url", "origin", self.url)
            await self._git("-C", str(self.mirror), "fetch", "--prune", "--quiet", "origin")

    async def resolve(self, ref: str) -> Resolved:
        validate.ref(ref)
        try:
            out = await self._git(
                "-C",
                str(self.mirror),
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",
                f"{ref}^{{commit}}",
            )
        except VcsError:
            raise VcsError(f"ref {ref!r} not found in {self.url}") from None
        commit = out.strip()
        branch = tag = ""
        if await self._has(f"refs/heads/{ref}"):
            branch = ref
        elif await self._has(f"refs/tags/{ref}"):
            tag = ref
        return Resolved(ref=ref, commit=commit, branch=branch, tag=tag)

    async def _has(self, full_ref: str) -> bool:
        try:
            await self._git("-C", str(self.mirror), "show-ref", "--verify", "--quiet", full_ref)
        except VcsError:
            return False
        return True

    async def export(self, resolved: Resolved, dest: Path) -> None:
        await self._git(
            "clone", "--quiet", "--shared", "--no-checkout", "--", str(self.mirror), str(dest)
        )
        await self._git("-C", str(dest), "checkout", "--quiet", "--detach", resolved.commit)
        if (dest / ".gitmodules").exists():
            await self._git("-C", str(dest), "remote", "set-url", "origin", self.url)
            await self._git(
                "-C", str(dest), "submodule", "update", "--init", "--recursive", "--quiet"
            )

    async def reachable(self) -> None:
        await self._git("ls-remote", "--heads", "--", self.url)


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
