"""Review (session 7): ``verify_served``'s wait is said to be bounded by
``attempts x (timeout + interval)`` (``project_rules``: it counts against the space's task
limit), but ``timeout`` bounds each read, not the try: a host that answers a byte at a time
holds the deploy (and the environment's lock) for as long as it likes."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx
import pytest

from ferryman.config.served import VerifyServed
from ferryman.pipeline import served

ADDRESS = "127.0.180.231"


async def _listen(handler: Any) -> tuple[asyncio.Server, int]:
    for _ in range(50):
        port = random.randint(20000, 29999)
        try:
            return await asyncio.start_server(handler, ADDRESS, port), port
        except OSError:
            continue
    raise RuntimeError("no free port")


async def _drip_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
    try:
        for _ in range(100000):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.3)
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def _drip_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\n")
    try:
        for n in range(100000):
            writer.write(f"X-Pad-{n}: a\r\n".encode())
            await writer.drain()
            await asyncio.sleep(0.3)
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


@pytest.mark.parametrize("header", [None, "X-Release"])
def test_a_host_dripping_its_answer_is_given_up_on_within_the_try_timeout(header):
    check = VerifyServed(http="http://{HOST}/version", header=header, attempts=1, timeout=1)
    handler = _drip_body if header is None else _drip_headers

    async def main() -> float:
        server, port = await _listen(handler)
        started = time.monotonic()
        try:
            async with asyncio.timeout(8):  # far past the 1 s the check allows
                try:
                    await served.answer(check, f"http://{ADDRESS}:{port}/version")
                except httpx.HTTPError:
                    pass  # given up on: what is expected
        except TimeoutError:
            pass
        finally:
            server.close()
        return time.monotonic() - started

    took = asyncio.run(main())
    assert took < 4, f"one try of a 1 s timeout took {took:.1f}s and was still reading"
