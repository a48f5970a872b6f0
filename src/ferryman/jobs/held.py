"""Holding a claim while its work runs: the worker's side of ``db/claims.py``.

A claim's lease is shorter than some of the work done under it (a round of health checks on
many slow hosts), so the worker renews it every third of the lease while the work runs. A
renewal the database cannot answer is tried again at the next third: the fence still holds,
and the claim is only lost once another claim took the row. A renewal that says the claim is
lost cancels the work, which then writes nothing (``ClaimLost``); whoever holds the row now
decides.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


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
        while not task.done():
            await asyncio.sleep(lease / 3)
            if task.done():
                return
            try:
                holds = await asyncio.to_thread(renew)
            except Exception:  # the database is away: try again; the fence still holds
                log.warning("%s: lease not renewed", name, exc_info=True)
                continue
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
