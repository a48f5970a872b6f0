"""Waking a worker the moment any process queues a deploy, on PostgreSQL: migration 0018's
trigger sends ``NOTIFY ferryman_queued`` when a deploy becomes queued (delivered when its
transaction commits), and every worker ``LISTEN``s on a connection of its own.

The poll (``FERRYMAN_WORKER_POLL``) stays as it was underneath: a notification lost while the
listening connection was down (a database restart) costs at most one poll, and the worker
claims once more whenever it starts listening again. SQLite and MariaDB have no
notifications: there a worker in the server's own process is woken directly
(``http_deps.wake_worker``) and the others poll."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy.engine import URL

log = logging.getLogger(__name__)
CHANNEL = "ferryman_queued"
CONNECT_TIMEOUT = 10  # seconds
RETRY = (0.5, 1.0, 2.0, 5.0)  # seconds between attempts to listen again


def conninfo(url: URL) -> str | None:
    """The libpq address of a PostgreSQL database URL, None for other databases."""
    if url.get_backend_name() != "postgresql":
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def listen(url: URL, wake: Callable[[], None], queues: list[str]) -> None:
    """Call ``wake()`` whenever a deploy is queued in one of ``queues`` (all when empty),
    until cancelled; returns at once for a database that is not PostgreSQL."""
    address = conninfo(url)
    if address is None:
        return
    import psycopg  # only installed with the postgresql extra, only needed here

    attempt = 0
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(
                address, autocommit=True, connect_timeout=CONNECT_TIMEOUT
            ) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                attempt = 0
                wake()  # whatever was queued while nobody listened
                async for notice in conn.notifies():
                    if not queues or notice.payload in queues:
                        wake()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the poll goes on meanwhile; listen again shortly
            pause = RETRY[min(attempt, len(RETRY) - 1)]
            attempt += 1
            log.warning("listening for queued deploys failed (%s); again in %.1fs", exc, pause)
            await asyncio.sleep(pause)
