"""The one place that touches SSH: a connection per host, reused by every stage.

``run`` executes an argv command with a timeout on both ends (the remote ``timeout`` utility kills
the process tree, and the client gives up a little later in case the host itself is gone); it
streams output lines to a callback. A deploy's commands are also recorded on the host so that
they can be stopped from another connection (``track``: ``commands.processes``). ``send_file``
streams a local file to a command's stdin in chunks, waiting for each to drain, so memory stays
flat however many hosts are fed at once; ``on_progress`` hears the bytes sent so far after each
chunk (the caller throttles what it records: ``Recorder.transfer_progress``).
asyncssh and OS errors become ``RemoteError`` naming the host and stage.

``max_connections`` bounds the connections kept open: once more are open, the least recently
used one that runs nothing is closed (a later command on its host connects again). A command
never waits for room, so connections in use may go past it — by as many hosts as the stages
running at once work on (each bounded by ``parallel``) — but never towards one per host of a
fleet larger than that. None: one connection per host, kept until ``close``.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import shlex
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from ferryman.commands.remote import Command
from ferryman.errors import RemoteError, StageTimeout

LineCallback = Callable[[str, str], None]  # (stream, line)
ProgressCallback = Callable[[int, int], None]  # (bytes sent so far, bytes in all)
CHUNK = 256 * 1024
TAIL = 4000
# bytes of one output line handed to ``on_line``, at most: the rest up to its newline is
# dropped and counted (output is hostile input: megabytes without a newline are one line)
MAX_LINE = 64 * 1024
KILL_GRACE = 5
MAX_HANDSHAKES = 100  # concurrent SSH handshakes per process
# AES-GCM first: with AES-NI it costs half the CPU of chacha20-poly1305 (asyncssh's default
# first choice) on both ends — measured 0.34 vs 0.68 CPU-s to send 200 MB. The rest of the
# usual list stays as a fallback for servers without it.
CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
)


@dataclass(frozen=True)
class Target:
    key: str  # the host's identity in records: "10.0.0.14:2222"
    address: str
    port: int
    user: str


@dataclass(frozen=True)
class Result:
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


Wrapper = Callable[[Command], Command]


def wrap(command: Command, timeout: float, track: Wrapper | None = None) -> str:
    """The command line sent to the host: ``timeout -k 5 T argv…``, every element quoted;
    with ``track`` (``commands.processes.track``) that argv is started so it can be stopped
    later from another connection."""
    argv = ("timeout", "-k", str(KILL_GRACE), f"{max(1, round(timeout))}", *command)
    return shlex.join(track(argv) if track is not None else argv)


class _Tail:
    """The last ``limit`` characters of a stream (everything when ``limit`` is None)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        while self.limit and self.size > self.limit * 4 and len(self.parts) > 1:
            self.size -= len(self.parts.pop(0))

    def text(self) -> str:
        joined = "".join(self.parts)
        return joined[-self.limit :] if self.limit else joined


class Executor:
    def __init__(
        self,
        *,
        client_key: Path,
        known_hosts: Path,
        host_keys: dict[str, str] | None = None,
        connect_timeout: float = 15,
        max_connections: int | None = None,
    ) -> None:
        self.client_key = client_key
        self.known_hosts = known_hosts
        self.host_keys = dict(host_keys or {})  # target key -> pinned key lines
        self.connect_timeout = connect_timeout
        self._connections: dict[str, asyncssh.SSHClientConnection] = {}
        # connections no longer handed out (lost, or a second one to the same host): closed
        # with the others in ``close``, so that none is left for the collector to find open
        self._retired: list[asyncssh.SSHClientConnection] = []
        self.max_connections = max_connections
        self.handshakes = 0  # connections made (each an SSH handshake), for stages and benchmarks
        self._opening: dict[str, asyncio.Lock] = {}  # host key -> held while connecting
        self._in_use: dict[str, int] = {}  # host key -> commands running on its connection
        self._closing: set[asyncio.Future[None]] = set()  # trimmed connections, closing
        self._handshakes = asyncio.Semaphore(MAX_HANDSHAKES)
        self._keys: list[asyncssh.SSHKey] | None = None

    def _client_keys(self) -> list[asyncssh.SSHKey]:
        if self._keys is None:
            try:
                self._keys = [asyncssh.read_private_key(str(self.client_key))]
            except (OSError, asyncssh.KeyImportError) as exc:
                raise RemoteError(
                    f"cannot read SSH key {self.client_key}: {exc}", host="-", stage="connect"
                ) from None
        return self._keys

    async def connect(self, target: Target, stage: str = "connect") -> None:
        if target.key in self._connections:
            return
        # two stages reaching a host at once (the probe beside the early link) share one
        # handshake: the second waits for the first's connection instead of opening another
        opening = self._opening.setdefault(target.key, asyncio.Lock())
        async with opening:
            if target.key not in self._connections:
                await self._connect(target, stage)

    async def _connect(self, target: Target, stage: str) -> None:
        self._trim(room=1)
        keys = self._client_keys()
        trusted = self._trusted(target, stage)
        async with self._handshakes:
            try:
                conn = await asyncio.wait_for(
                    asyncssh.connect(
                        target.address,
                        target.port,
                        username=target.user,
                        client_keys=keys,
                        known_hosts=trusted,
                        agent_path=None,
                        config=[],
                        preferred_auth="publickey",
                        connect_timeout=self.connect_timeout,
                        keepalive_interval=15,
                        keepalive_count_max=4,
                        encryption_algs=CIPHERS,
                    ),
                    timeout=self.connect_timeout + 5,
                )
            except asyncssh.HostKeyNotVerifiable as exc:
                where = (
                    "it is not the key pinned for this server (`ferryman server trust`)"
                    if target.key in self.host_keys
                    else f"pin it with `ferryman server trust` (or add it to {self.known_hosts})"
                )
                raise RemoteError(
                    f"host key not verified ({exc.reason}); {where}",
                    host=target.key,
                    stage=stage,
                ) from None
            except asyncssh.PermissionDenied:
                raise RemoteError(
                    f"permission denied for {target.user} with key {self.client_key}",
                    host=target.key,
                    stage=stage,
                ) from None
            except (TimeoutError, asyncssh.Error, OSError) as exc:
                raise RemoteError(
                    f"cannot connect: {_describe(exc)}", host=target.key, stage=stage
                ) from None
        self.handshakes += 1
        if target.key in self._connections:  # another task connected to it meanwhile
            self._retired.append(conn)
            return
        self._connections[target.key] = conn

    def connected(self, key: str) -> bool:
        """Whether a connection to host ``key`` is open now (a command on it costs no
        handshake)."""
        return key in self._connections

    def _trusted(
        self, target: Target, stage: str
    ) -> str | tuple[list[asyncssh.SSHKey], list[asyncssh.SSHKey], list[asyncssh.SSHKey]]:
        """The host keys to accept from ``target``: its pinned keys, else the known_hosts
        file (kept by the superuser). Never anything unverified."""
        pinned = self.host_keys.get(target.key, "").strip()
        if not pinned:
            return str(self.known_hosts)
        try:
            keys = [asyncssh.import_public_key(line) for line in pinned.splitlines() if line]
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise RemoteError(
                f"the pinned host key is unreadable: {exc}", host=target.key, stage=stage
            ) from None
        return keys, [], []

    def _conn(self, target: Target, stage: str) -> asyncssh.SSHClientConnection:
        try:
            return self._connections[target.key]
        except KeyError:
            raise RemoteError("not connected", host=target.key, stage=stage) from None

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
        """Run ``command`` on ``target``; feed ``stdin`` bytes or the file ``source``
        (``on_progress`` is told the bytes of ``source`` sent after each chunk has drained).

        ``stdout``/``stderr`` of the result keep the last few KB, or all of stdout when
        ``full_output`` is set (for reading a file such as a manifest). ``track`` makes the
        command stoppable from elsewhere (see ``wrap``). When the caller stops waiting
        (cancelled), the channel is closed.
        """
        await self.connect(target, stage)
        conn = self._conn(target, stage)
        # most recently used last (what ``_trim`` closes first is the front); in use until done
        self._connections[target.key] = self._connections.pop(target.key)
        self._in_use[target.key] = self._in_use.get(target.key, 0) + 1
        try:
            return await self._run(
                conn,
                target,
                command,
                stage,
                timeout,
                stdin,
                source,
                on_line,
                check,
                full_output,
                track,
                on_progress,
            )
        finally:
            left = self._in_use.pop(target.key) - 1
            if left:
                self._in_use[target.key] = left
            self._trim()

    def _trim(self, room: int = 0) -> None:
        """Close least recently used idle connections until ``room`` more fit under
        ``max_connections``; connections in use stay open whatever their number."""
        if self.max_connections is None:
            return
        idle = [k for k in self._connections if not self._in_use.get(k)]
        excess = len(self._connections) + room - self.max_connections
        for key in idle[: max(excess, 0)]:
            conn = self._connections.pop(key)
            conn.close()
            closing = asyncio.ensure_future(conn.wait_closed())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    async def settle(self) -> None:
        """Wait until the connections the bound closed are closed (their sockets too)."""
        await asyncio.gather(*list(self._closing), return_exceptions=True)

    async def _run(
        self,
        conn: asyncssh.SSHClientConnection,
        target: Target,
        command: Command,
        stage: str,
        timeout: float,
        stdin: bytes | None,
        source: Path | None,
        on_line: LineCallback | None,
        check: bool,
        full_output: bool,
        track: Wrapper | None,
        on_progress: ProgressCallback | None,
    ) -> Result:
        line = wrap(command, timeout, track)
        shown = shlex.join(command)
        out, err = _Tail(None if full_output else TAIL), _Tail(TAIL)
        process: asyncssh.SSHClientProcess[bytes] | None = None
        try:
            async with asyncio.timeout(timeout + KILL_GRACE + 10):
                process = await conn.create_process(line, encoding=None)
                readers = asyncio.gather(
                    _pump(process.stdout, out, "stdout", on_line),
                    _pump(process.stderr, err, "stderr", on_line),
                )
                try:
                    await _feed(process.stdin, stdin, source, on_progress)
                except (asyncssh.Error, OSError, BrokenPipeError):
                    pass  # the command ended early; its exit status tells why
                await readers
                completed = await process.wait(check=False)
        except asyncio.CancelledError:
            if process is not None:
                process.close()  # nobody reads it any more
            raise
        except TimeoutError:
            if process is not None:
                process.close()  # the host stopped answering; do not leave the channel open
            raise StageTimeout(
                f"{target.key} [{stage}]: no answer within {timeout:g}s: {shown[:200]}",
                host=target.key,
                stage=stage,
            ) from None
        except (asyncssh.Error, OSError) as exc:
            lost = self._connections.pop(target.key, None)
            if lost is not None:
                self._retired.append(lost)
            raise RemoteError(
                f"connection lost: {_describe(exc)}", host=target.key, stage=stage, command=shown
            ) from None
        status = completed.exit_status
        if status is None:
            status = 255  # killed by a signal or the channel closed without a status
        result = Result(exit_status=status, stdout=out.text(), stderr=err.text())
        if status == 124 and check:
            raise StageTimeout(
                f"{target.key} [{stage}]: timed out after {timeout:g}s: {shown[:200]}",
                host=target.key,
                stage=stage,
            )
        if check and status != 0:
            raise RemoteError(
                "command failed",
                host=target.key,
                stage=stage,
                command=shown,
                exit_status=status,
                stderr_tail=result.stderr or result.stdout,
            )
        return result

    async def close(self) -> None:
        conns = [*self._connections.values(), *self._retired]
        closing = list(self._closing)
        self._connections.clear()
        self._retired.clear()
        for conn in conns:
            conn.close()
        await asyncio.gather(*(c.wait_closed() for c in conns), *closing, return_exceptions=True)


async def _feed(
    stdin: asyncssh.SSHWriter[bytes],
    data: bytes | None,
    source: Path | None,
    on_progress: ProgressCallback | None = None,
) -> None:
    if source is not None:
        loop = asyncio.get_running_loop()
        with source.open("rb") as fh:
            total = os.fstat(fh.fileno()).st_size
            sent = 0
            if on_progress is not None:
                on_progress(sent, total)
            while True:
                chunk = await loop.run_in_executor(None, fh.read, CHUNK)
                if not chunk:
                    break
                stdin.write(chunk)
                await stdin.drain()
                sent += len(chunk)
                if on_progress is not None:
                    on_progress(sent, max(total, sent))  # a file that grew: never past 100 %
    elif data:
        stdin.write(data)
        await stdin.drain()
    stdin.write_eof()


async def _pump(
    reader: asyncssh.SSHReader[bytes], tail: _Tail, stream: str, on_line: LineCallback | None
) -> None:
    lines = Lines(stream, on_line)
    # one decoder for the whole stream: a character split between two reads stays whole
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            tail.add(decoder.decode(b"", final=True))
            break
        tail.add(decoder.decode(chunk))
        lines.feed(chunk)
    lines.close()


class Lines:
    """A stream's output bytes handed to ``on_line`` as lines of text, each cut at
    ``MAX_LINE`` bytes with the count of what was cut: what is kept stays bounded however
    long a line runs (memory, and the split of each read)."""

    def __init__(self, stream: str, on_line: LineCallback | None) -> None:
        self.stream, self.on_line = stream, on_line
        self.pending = b""
        self.cut = 0  # bytes of the pending line dropped past MAX_LINE

    def feed(self, chunk: bytes) -> None:
        if self.on_line is None:
            return
        *lines, pending = (self.pending + chunk).split(b"\n")
        for raw in lines:
            self.on_line(self.stream, self._text(raw))
        if len(pending) > MAX_LINE:
            self.cut += len(pending) - MAX_LINE
            pending = pending[:MAX_LINE]
        self.pending = pending

    def close(self) -> None:
        if self.on_line is not None and (self.pending or self.cut):
            self.on_line(self.stream, self._text(self.pending))
        self.pending = b""

    def _text(self, raw: bytes) -> str:
        cut, self.cut = self.cut + max(len(raw) - MAX_LINE, 0), 0
        text = raw[:MAX_LINE].decode("utf-8", "replace")
        return f"{text} … ({cut} bytes cut)" if cut else text


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:300] if text else type(exc).__name__


async def fan_out(
    targets: Iterable[Target],
    action: Callable[[Target], Awaitable[None]],
    limit: int,
) -> dict[str, BaseException]:
    """Run ``action`` for every target, at most ``limit`` at once; return failures by host."""
    gate = asyncio.Semaphore(limit)
    failures: dict[str, BaseException] = {}

    async def one(target: Target) -> None:
        async with gate:
            try:
                await action(target)
            except Exception as exc:
                failures[target.key] = exc

    await asyncio.gather(*(one(t) for t in targets))
    return failures
