"""A command's output is decoded as one stream: a character split between two reads of the
channel arrives whole in the tail (and in full output), not as two replacement marks."""

from __future__ import annotations

import asyncio

from ferryman.remote.executor import _pump, _Tail


class Chunks:
    """A channel's stdout as it arrives: in the pieces the network happened to cut."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    async def read(self, _size: int) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


def test_a_character_split_between_two_reads_arrives_whole():
    text = "摆渡人 ferries releases\n"
    data = text.encode()
    tail = _Tail(None)
    lines: list[str] = []
    asyncio.run(
        _pump(
            Chunks(data[:1], data[1:4], data[4:]),
            tail,
            "stdout",  # type: ignore[arg-type]
            lambda _stream, line: lines.append(line),
        )
    )
    assert tail.text() == text
    assert lines == [text.rstrip("\n")]


def test_bytes_that_are_not_utf8_are_replaced_not_fatal():
    tail = _Tail(None)
    asyncio.run(_pump(Chunks(b"ok \xff\xfe end"), tail, "stdout", None))  # type: ignore[arg-type]
    assert tail.text() == "ok \ufffd\ufffd end"
