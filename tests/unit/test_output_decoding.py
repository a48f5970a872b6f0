"""A command's output is decoded as one stream: a character split between two reads of the
channel arrives whole in the tail (and in full output), not as two replacement marks."""

from __future__ import annotations

import asyncio
from typing import cast

import asyncssh

from ferryman.remote.executor import _pump, _Tail


class Chunks:
    """A channel's stdout as it arrives: in the pieces the network happened to cut."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    async def read(self, _size: int) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


def _channel(*chunks: bytes) -> asyncssh.SSHReader[bytes]:
    """``Chunks`` where ``_pump`` wants a reader: it only ever calls ``read``."""
    return cast("asyncssh.SSHReader[bytes]", Chunks(*chunks))


def test_a_character_split_between_two_reads_arrives_whole():
    text = "摆渡人 ferries releases\n"
    data = text.encode()
    tail = _Tail(None)
    lines: list[str] = []
    asyncio.run(
        _pump(
            _channel(data[:1], data[1:4], data[4:]),
            tail,
            "stdout",
            lambda _stream, line: lines.append(line),
        )
    )
    assert tail.text() == text
    assert lines == [text.rstrip("\n")]


def test_bytes_that_are_not_utf8_are_replaced_not_fatal():
    tail = _Tail(None)
    asyncio.run(_pump(_channel(b"ok \xff\xfe end"), tail, "stdout", None))
    assert tail.text() == "ok \ufffd\ufffd end"
