"""How a CLI follower waits between reconnects, and what makes it give up (pure, no server)."""

from __future__ import annotations

import io

from rich.console import Console

from ferryman.cli.backoff import Backoff, describe, is_refusal
from ferryman.cli.client import error_for_status
from ferryman.errors import FerrymanError, RateLimited


def test_reconnect_waits_double_from_half_a_second_to_five_and_say_so_once():
    waits: list[float] = []
    said = io.StringIO()
    backoff = Backoff("http://127.0.0.1:18139", Console(file=said, width=200), waits.append)
    for _ in range(8):
        backoff.failed("connection refused")
    tops = [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0]
    assert all(0.8 * top <= wait <= top for wait, top in zip(waits, tops, strict=True))
    assert said.getvalue() == "lost http://127.0.0.1:18139 (connection refused); reconnecting\n"

    backoff.succeeded()
    backoff.failed("the server is restarting")
    assert waits[-1] <= 0.5 and said.getvalue().count("reconnecting") == 2


def test_only_a_refusal_ends_a_follow():
    for status in (401, 403, 404):
        assert is_refusal(error_for_status(status, "no"))
    assert not is_refusal(FerrymanError("cannot reach http://127.0.0.1:18139"))
    assert not is_refusal(FerrymanError("the database is unavailable; try again shortly"))
    assert not is_refusal(RateLimited("too many"))
    assert describe(ConnectionRefusedError(111, "Connect call failed")) == "connection refused"
