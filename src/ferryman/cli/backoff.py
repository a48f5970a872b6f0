"""Reconnecting without giving up: the wait between attempts doubles from ``FIRST`` to
``LONGEST`` (with a little jitter, so that the viewers of a restarted server do not all come
back at once), with no fixed number of attempts. Only a clear answer ends it: the server
refused (401, 403, 404 or another 4xx) — see ``is_refusal``.

Each lost connection prints one short line on stderr, again every ``REMIND_EVERY`` seconds
while it lasts; never a traceback."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ferryman.errors import FerrymanError

if TYPE_CHECKING:
    from rich.console import Console

FIRST = 0.5
LONGEST = 5.0
REMIND_EVERY = 30.0


class Backoff:
    """The waits of one follower: ``failed`` after each failed attempt (it prints and
    sleeps), ``succeeded`` once the server answers again."""

    def __init__(
        self,
        server: str,
        err: Console,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.server = server
        self.err = err
        self.sleep = sleep
        self.attempts = 0
        self._since: float | None = None
        self._told = 0.0

    def failed(self, problem: str) -> None:
        now = time.monotonic()
        if self._since is None:
            self._since = self._told = now
            self._say(f"lost {self.server} ({problem}); reconnecting")
        elif now - self._told >= REMIND_EVERY:
            self._told = now
            self._say(
                f"still reconnecting to {self.server} after {now - self._since:.0f}s ({problem})"
            )
        self.sleep(self.delay())
        self.attempts += 1

    def delay(self) -> float:
        return min(LONGEST, FIRST * 2.0**self.attempts) * random.uniform(0.8, 1.0)

    def succeeded(self) -> None:
        self.attempts = 0
        self._since = None

    def _say(self, text: str) -> None:
        self.err.print(text, style="yellow", markup=False, highlight=False)


def is_refusal(exc: FerrymanError) -> bool:
    """A clear answer from the server (no such deploy, no access, bad token): retrying would
    get the same. Anything else — cannot connect, a 5xx, a proxy's error page — may pass."""
    return refuses(exc.http_status)


def refuses(status: int) -> bool:
    """Whether an HTTP status is a refusal (a 4xx but 408 timeout and 429 too many)."""
    return 400 <= status < 500 and status not in (408, 429)


def describe(exc: BaseException) -> str:
    """One short phrase for a failed attempt."""
    import websockets  # imported by the stream already; not by `ferryman --help`

    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, websockets.exceptions.InvalidStatus):
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, websockets.exceptions.ConnectionClosed):
        if exc.rcvd is None:
            return "connection dropped"
        if exc.rcvd.code == 1012:
            return "the server is restarting"
        return f"closed with {exc.rcvd.code}" + (f": {exc.rcvd.reason}" if exc.rcvd.reason else "")
    text = (str(exc).splitlines() or [""])[0][:160]
    return text or type(exc).__name__
