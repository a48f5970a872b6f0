"""Local deploys (``hosts: [local]``): the deploy host itself as a target, without SSH.

Every command a stage would send to a host runs here in the build sandbox (bubblewrap, see
``sandbox.py`` and ``docs/security.md``), with the same remote ``timeout`` wrapper and the
same client-side deadline as over SSH. What a local target's commands may touch is decided
here, not by the project file:

- they run as the project's own unprivileged uid (``local_uid``: one per project, outside the
  per-deploy range, so a release written by one deploy can be pruned by the next and by no
  other project), never as the server;
- the only writable paths are the environment's releases dir, its webroot's parent dir and its
  shared dir, each bound at its own path; the rest of the machine is what a build sees (a
  read-only ``/usr``, a few ``/etc`` files, private ``/tmp``): ``FERRYMAN_HOME``, the
  database, keys, mirrors and other workspaces are not there at all, so neither a hook nor a
  committed symlink reaches them;
- those paths must already exist and belong to that uid (a superuser's ``install -d -o UID``
  is the grant), and may not lie in or contain Ferryman's home, the sandbox's stage or a
  system directory (``domain.local_paths``). Nothing is created or chowned for the project.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import shlex
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ferryman import sandbox
from ferryman.commands import sandbox as cmd
from ferryman.commands.remote import Command
from ferryman.config.settings import Settings
from ferryman.domain import local_paths
from ferryman.errors import RemoteError, StageTimeout
from ferryman.remote.executor import (
    CHUNK,
    KILL_GRACE,
    TAIL,
    Executor,
    LineCallback,
    Lines,
    ProgressCallback,
    Result,
    Target,
    Wrapper,
    _Tail,
)

LOCAL = local_paths.LOCAL
HOME = "/tmp"  # the sandbox's $HOME: private, gone with it


def local_uid(settings: Settings, project_id: int) -> int | None:
    """The uid a project's local target runs as (None when the server is not root: then as
    the server's own user, still sandboxed)."""
    if not sandbox.as_root():
        return None
    return settings.sandbox_uid_base + settings.sandbox_uid_count + project_id


@dataclass(frozen=True)
class LocalPlace:
    """What one environment's local target may write (absolute paths, as configured)."""

    releases: str
    webroot: str
    shared_dir: str
    network: bool = True

    def writable(self) -> list[str]:
        paths = [self.releases, os.path.dirname(self.webroot)]
        if os.path.isdir(self.shared_dir):  # only needed (and bound) when it is there
            paths.append(self.shared_dir)
        return paths


class LocalExecutor:
    """Runs a stage's host commands for the target ``local`` in the sandbox (see above)."""

    def __init__(self, settings: Settings, project_id: int, place: LocalPlace) -> None:
        self.settings = settings
        self.project_id = project_id
        self.place = place
        self.uid = local_uid(settings, project_id)
        self._checked: list[str] | None = None

    def _paths(self, stage: str) -> list[str]:
        """The writable paths, resolved and checked once per deploy (``RemoteError`` naming
        what is wrong and how a superuser grants it)."""
        if self._checked is not None:
            return self._checked
        if not sandbox.enabled(self.settings):
            raise _refused("a local target needs the build sandbox (FERRYMAN_SANDBOX=auto)", stage)
        guarded = [str(self.settings.home), str(self.settings.sandbox_stage)]
        out = []
        for path in self.place.writable():
            real = os.path.realpath(path)
            problem = local_paths.problem(real, guarded)
            if problem:
                raise _refused(f"{path}: {problem}", stage)
            if not os.path.isdir(real):
                raise _refused(f"{path} does not exist; {self._grant(path)}", stage)
            owner = os.stat(real).st_uid
            if self.uid is not None and owner != self.uid:
                raise _refused(f"{path} is not owned by uid {self.uid}; {self._grant(path)}", stage)
            out.append(real)
        self._checked = out
        return out

    def _grant(self, path: str) -> str:
        who = f"-o {self.uid} -g {self.uid} " if self.uid is not None else ""
        return f"a superuser grants it with `install -d {who}{shlex.quote(path)}`"

    async def run(
        self,
        command: Command,
        *,
        stage: str,
        timeout: float,
        stdin: bytes | None = None,
        source: Path | None = None,
        on_line: LineCallback | None = None,
        check: bool = True,
        full_output: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> Result:
        paths = self._paths(stage)
        await sandbox.require(self.settings, "a local target's command", stage, LOCAL)
        shown = shlex.join(command)
        inner = ("timeout", "-k", str(KILL_GRACE), f"{max(1, round(timeout))}", *command)
        argv = self._argv(inner, paths)
        out, err = _Tail(None if full_output else TAIL), _Tail(TAIL)
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd="/",
            env={},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            async with asyncio.timeout(timeout + KILL_GRACE + 10):
                readers = asyncio.gather(
                    _pump(process.stdout, out, "stdout", on_line),
                    _pump(process.stderr, err, "stderr", on_line),
                )
                await _feed(process.stdin, stdin, source, on_progress)
                await readers
                status = await process.wait()
        except TimeoutError:
            await _kill(process)
            raise StageTimeout(
                f"{LOCAL} [{stage}]: no answer within {timeout:g}s: {shown[:200]}",
                host=LOCAL,
                stage=stage,
            ) from None
        except BaseException:
            await _kill(process)
            raise
        if status < 0:
            status = 255  # killed by a signal
        result = Result(exit_status=status, stdout=out.text(), stderr=err.text())
        if status == 124 and check:
            raise StageTimeout(
                f"{LOCAL} [{stage}]: timed out after {timeout:g}s: {shown[:200]}",
                host=LOCAL,
                stage=stage,
            )
        if check and status != 0:
            raise RemoteError(
                "command failed",
                host=LOCAL,
                stage=stage,
                command=shown,
                exit_status=status,
                stderr_tail=result.stderr or result.stdout,
            )
        return result

    def _argv(self, inner: Sequence[str], paths: list[str]) -> list[str]:
        settings = self.settings
        stage_mounts: list[tuple[str, str]] = []
        binds = []
        for index, path in enumerate(paths):
            origin = path
            if self.uid is not None:  # reached through a mount point the uid can enter
                point = settings.sandbox_stage / f"local-{index}"
                point.mkdir(mode=0o755, parents=True, exist_ok=True)
                stage_mounts.append((path, str(point)))
                origin = str(point)
            binds.append(cmd.Bind(origin, path, True))
        # read-only and world-readable: the probe's `requires.packages` asks them
        binds += [cmd.Bind(db, db, False) for db in cmd.PACKAGE_DBS if os.path.isdir(db)]
        links, dirs = sandbox.root_layout()
        spec = cmd.Spec(
            argv=tuple(inner),
            cwd="/",
            home=HOME,
            binds=tuple(binds),
            network=self.place.network,
            root_links=links,
            root_dirs=dirs,
        )
        return cmd.command(
            settings.bwrap, spec, sandbox.limits(settings), uid=self.uid, stage=stage_mounts
        )


class WithLocal(Executor):
    """The SSH executor, with the target ``local`` run by a ``LocalExecutor`` instead."""

    def __init__(self, *, local: LocalExecutor, **ssh: object) -> None:
        super().__init__(**ssh)  # type: ignore[arg-type]
        self.local = local

    async def connect(self, target: Target, stage: str = "connect") -> None:
        if target.key == LOCAL:
            self.local._paths(stage)
            return
        await super().connect(target, stage)

    async def run(
        self,
        target: Target,
        command: Command,
        *,
        stage: str,
        timeout: float,
        stdin: bytes | None = None,
        source: Path | None = None,
        on_line: LineCallback | None = None,
        check: bool = True,
        full_output: bool = False,
        track: Wrapper | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Result:
        if target.key != LOCAL:
            return await super().run(
                target,
                command,
                stage=stage,
                timeout=timeout,
                stdin=stdin,
                source=source,
                on_line=on_line,
                check=check,
                full_output=full_output,
                track=track,
                on_progress=on_progress,
            )
        # not tracked: each command has a PID namespace of its own, and is stopped by killing
        # its process group here (a cancel, a timeout)
        return await self.local.run(
            command,
            stage=stage,
            timeout=timeout,
            stdin=stdin,
            source=source,
            on_line=on_line,
            check=check,
            full_output=full_output,
            on_progress=on_progress,
        )


def _refused(why: str, stage: str) -> RemoteError:
    return RemoteError(f"local target refused: {why}", host=LOCAL, stage=stage)


async def _feed(
    stdin: asyncio.StreamWriter | None,
    data: bytes | None,
    source: Path | None,
    on_progress: ProgressCallback | None = None,
) -> None:
    if stdin is None:
        return
    try:
        if source is not None:
            loop = asyncio.get_running_loop()
            with source.open("rb") as fh:
                total, sent = os.fstat(fh.fileno()).st_size, 0
                if on_progress is not None:
                    on_progress(sent, total)
                while chunk := await loop.run_in_executor(None, fh.read, CHUNK):
                    stdin.write(chunk)
                    await stdin.drain()
                    sent += len(chunk)
                    if on_progress is not None:
                        on_progress(sent, max(total, sent))
        elif data:
            stdin.write(data)
            await stdin.drain()
        stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the command ended early; its exit status tells why


async def _pump(
    reader: asyncio.StreamReader | None, tail: _Tail, stream: str, on_line: LineCallback | None
) -> None:
    if reader is None:
        return
    lines = Lines(stream, on_line)  # each cut at MAX_LINE, as over SSH
    decoder = codecs.getincrementaldecoder("utf-8")("replace")  # characters split by reads
    while chunk := await reader.read(65536):
        tail.add(decoder.decode(chunk))
        lines.feed(chunk)
    tail.add(decoder.decode(b"", final=True))
    lines.close()


async def _kill(process: asyncio.subprocess.Process) -> None:
    """Kill the sandbox's whole process group (bubblewrap and, with its PID namespace's init,
    everything inside) and reap it."""
    if process.returncode is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        await asyncio.wait_for(process.wait(), 10)
    except TimeoutError:
        pass


def with_local(ssh: Executor, settings: Settings, project_id: int, place: LocalPlace) -> WithLocal:
    """``ssh`` (its key, host keys and timeouts), with the target ``local`` run here."""
    return WithLocal(
        local=LocalExecutor(settings, project_id, place),
        client_key=ssh.client_key,
        known_hosts=ssh.known_hosts,
        host_keys=ssh.host_keys,
        connect_timeout=ssh.connect_timeout,
    )
