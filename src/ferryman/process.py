"""Running commands on the deploy host itself: argv only, a timeout always, output streamed.

On timeout the whole process group is killed, so a hung build or ``git fetch`` never hangs a
deploy and leaves nothing behind (a sandboxed command dies with its sandbox: bubblewrap's
``--die-with-parent`` and the end of its PID namespace take every process inside along).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ferryman.errors import InternalError, StageTimeout

TAIL = 4000


@dataclass(frozen=True)
class LocalResult:
    exit_status: int
    stdout: str
    stderr: str


async def run_local(
    argv: Sequence[str],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    on_line: Callable[[str, str], None] | None = None,
    what: str = "command",
    inherit_env: bool = True,
    pass_fds: Sequence[int] = (),
) -> LocalResult:
    """Run ``argv``; with ``inherit_env=False`` the child gets ``env`` only (nothing of the
    server's environment). ``pass_fds`` stay open in the child under the same numbers."""
    full_env = dict(os.environ) if inherit_env else {}
    if env:
        full_env.update(env)
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=str(cwd) if cwd else None,
        env=full_env,
        pass_fds=tuple(pass_fds),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    out: list[str] = []
    err: list[str] = []

    async def pump(reader: asyncio.StreamReader | None, sink: list[str], stream: str) -> None:
        if reader is None:  # both are pipes, asked for above
            raise InternalError(f"the {stream} of {argv[0]} is not a pipe")
        while True:
            raw = await reader.readline()
            if not raw:
                return
            text = raw.decode("utf-8", "replace").rstrip("\n")
            sink.append(text)
            if len(sink) > 400:
                del sink[:200]
            if on_line is not None:
                on_line(stream, text)

    async def feed() -> None:
        if stdin is not None and process.stdin is not None:
            process.stdin.write(stdin)
            await process.stdin.drain()
            process.stdin.close()

    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(
                feed(), pump(process.stdout, out, "stdout"), pump(process.stderr, err, "stderr")
            )
            status = await process.wait()
    except TimeoutError:
        _kill_group(process.pid)
        await process.wait()
        raise StageTimeout(f"{what} timed out after {timeout:g}s") from None
    except BaseException:
        # a cancelled command too: killed and reaped here, so that its pipes close now and
        # not when it is collected, after its event loop has closed
        _kill_group(process.pid)
        await process.wait()
        raise
    return LocalResult(
        exit_status=status,
        stdout="\n".join(out)[-TAIL:],
        stderr="\n".join(err)[-TAIL:],
    )


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
