"""Holding a claim while its work runs: the worker's side of ``db/claims.py``.

A claim's lease is shorter than some of the work done under it (a round of health checks on
many slow hosts), so the worker renews it every third of the lease while the work runs. A
renewal the database cannot answer is tried again after ``RETRY_BEAT``, not a whole third
later: the fence still holds, and the claim is only lost once another claim took the row, but
a renewal soon after the database's return is what keeps the first worker back from taking
the claim over (``jobs/worker.py``, ``_database_answered``). A renewal that says the claim is
lost cancels the work, which then writes nothing (``ClaimLost``); whoever holds the row now
decides.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
# Seconds before a renewal (a heartbeat) the database did not answer is tried again. An
# attempt in flight when the database comes back may hang for the driver's connect timeout
# (``db.session.CONNECT_TIMEOUT``) first; the next one then follows within this.
RETRY_BEAT = 1.0


def next_beat(period: float, answered: bool) -> float:
    """Seconds to the next renewal of a claim renewed every ``period`` (about a third of its
    lease): the period after a renewal the database answered, at most ``RETRY_BEAT`` after
    one it did not."""
    return period if answered else min(RETRY_BEAT, period)


class ClaimLost(Exception):
    """The claim was lost while its work ran: the work was cancelled and wrote nothing."""


async def run_held(
    work: Awaitable[T],
    renew: Callable[[], bool],
    lease: float,
    name: str,
    log: logging.Logger,
) -> T:
    """Run ``work`` while renewing its claim every ``lease``/3 seconds with ``renew`` (a
    blocking call, run in a thread: True while the claim holds, False once it is lost).
    Returns what ``work`` returns; raises ``ClaimLost`` when a renewal found the claim lost."""
    task = asyncio.ensure_future(work)
    lost = False

    async def keep() -> None:
        nonlocal lost
        answered = True
        while not task.done():
            await asyncio.sleep(next_beat(lease / 3, answered))
            if task.done():
                return
            try:
                holds = await asyncio.to_thread(renew)
            except Exception:  # the database is away: try again soon; the fence still holds
                log.warning("%s: lease not renewed", name, exc_info=answered)
                answered = False
                continue
            answered = True
            if not holds:
                log.warning("%s: lease lost, round abandoned", name)
                lost = True
                task.cancel()
                return

    keeper = asyncio.create_task(keep())
    try:
        return await task
    except asyncio.CancelledError:
        if not lost:
            raise
        raise ClaimLost(name) from None
    finally:
        keeper.cancel()
