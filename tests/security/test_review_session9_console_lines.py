"""Review of session 9's console work: huge lines.

Hook output is trusted with nothing. A command that prints megabytes without a newline (a
committed script doing ``cat`` of a minified bundle, or on purpose) became one log line of
that size: the worker held all of it in memory (splitting the growing buffer again on every
64 KiB read, quadratic), stored it as one row, and every console viewer received it whole in
one "lines" message (protocol 2 sends a long line alone, however long). A line is now cut at
``MAX_LINE`` bytes, with the count of what was cut, and the lines after it arrive as usual.

Fleet: a real command on a real sshd host; the lines the executor hands the recorder are the
state asserted on."""

from __future__ import annotations

import asyncio

from ferryman.config.settings import Settings
from ferryman.remote.executor import MAX_LINE, Executor, Target
from ferryman.testing.fleet import FleetHost

HUGE = 8 * 1024 * 1024  # bytes printed without a newline


def test_a_command_printing_megabytes_without_a_newline_is_logged_as_a_cut_line(
    settings: Settings, targets: list[FleetHost]
) -> None:
    host = targets[0]
    target = Target(key=host.address, address=host.address, port=22, user="root")
    lines: list[tuple[str, str]] = []
    script = f"echo first; head -c {HUGE} /dev/zero | tr '\\0' x; echo; echo last; echo err >&2"

    async def scenario() -> int:
        executor = Executor(client_key=settings.ssh_key, known_hosts=settings.known_hosts)
        try:
            result = await executor.run(
                target,
                ("sh", "-c", script),
                stage="post_deploy",
                timeout=60,
                on_line=lambda stream, line: lines.append((stream, line)),
            )
        finally:
            await executor.close()
        return result.exit_status

    assert asyncio.run(scenario()) == 0
    out = [line for stream, line in lines if stream == "stdout"]
    assert len(out) == 3  # first, the huge one (cut), last: nothing lost around it
    assert out[0] == "first" and out[2] == "last"
    assert len(out[1].encode()) <= MAX_LINE + 100  # cut, with a note of how much
    assert out[1].startswith("x" * 1000)
    assert str(HUGE - MAX_LINE) in out[1]
    assert [line for stream, line in lines if stream == "stderr"] == ["err"]


def test_lines_are_cut_the_same_for_local_targets_and_ssh_hosts_however_the_reads_fall() -> None:
    """``Lines`` is what both executors (``remote/executor.py`` over SSH, ``remote/local.py``
    for ``hosts: [local]``) hand their output through: reads split anywhere give the same
    lines, each at most ``MAX_LINE`` bytes with what was cut counted, and nothing is held
    beyond that."""
    from ferryman.remote import local
    from ferryman.remote.executor import Lines

    assert getattr(local, "Lines") is Lines
    data = b"a\n" + b"x" * 200_000 + b"\nb\n" + b"y" * (MAX_LINE + 1) + b"\nz"
    expected = [
        "a",
        "x" * MAX_LINE + f" … ({200_000 - MAX_LINE} bytes cut)",
        "b",
        "y" * MAX_LINE + " … (1 bytes cut)",
        "z",
    ]
    for size in (1000, 4096, 65535, 65536, 100_000, len(data)):
        got: list[str] = []
        lines = Lines("stdout", lambda _stream, line: got.append(line))
        for start in range(0, len(data), size):
            lines.feed(data[start : start + size])
            assert len(lines.pending) <= MAX_LINE
        lines.close()
        assert got == expected, size
