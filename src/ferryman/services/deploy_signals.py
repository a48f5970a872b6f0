"""Telling the followers of a deploy that it changed — new log lines, new stages, its end —
as soon as the change is committed, so the live console (``api/routes/console.py``) and the
CLI's ``--wait`` behind it read again at once instead of at their next poll.

A writer calls ``changed(s, deploy_id)`` inside the transaction that changes the deploy:

- in this process, the deploy's followers are woken right after the commit (a worker embedded
  in the server, or any writer beside a console);
- on PostgreSQL, ``NOTIFY ferryman_deploy '<id>'`` rides the same transaction (delivered when
  it commits, never for a rollback), and every process with followers ``LISTEN``s on one
  connection of its own (``follow``), so a worker on another machine wakes them too.

Nothing here is relied upon alone: a follower still reads again after a bounded wait
(``Follower.wait``). A notification lost while the listening connection was down costs at most
that wait, and followers are woken whenever listening starts (again). SQLite and MariaDB have
no notifications: there only the in-process wake-up and the poll remain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)
CHANNEL = "ferryman_deploy"
CONNECT_TIMEOUT = 10  # seconds
RETRY = (0.5, 1.0, 2.0, 5.0)  # seconds between attempts to listen again
_PENDING = "ferryman.deploys_changed"  # the session's changed deploys, until it commits


def changed(s: Session, deploy_id: int) -> None:
    """Within the transaction that changes ``deploy_id``: wake its followers once it commits."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": CHANNEL, "payload": str(deploy_id)},
        )
    s.info.setdefault(_PENDING, set()).add(deploy_id)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    for deploy_id in session.info.pop(_PENDING, ()):
        _BELLS.ring(deploy_id)


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(_PENDING, None)


@dataclass(eq=False)
class _Listener:
    """One ``LISTEN`` connection for the followers of one event loop and one database."""

    task: asyncio.Task[None] | None = None
    followers: int = 0
    up: bool = False


@dataclass(eq=False)
class Follower:
    """One follower of one deploy, on the event loop that made it."""

    deploy_id: int
    loop: asyncio.AbstractEventLoop
    listener: _Listener | None = None
    event: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def notified(self) -> bool:
        """Whether another process's change reaches this follower too (PostgreSQL, while
        listening): then the wait between reads may be long."""
        return self.listener is not None and self.listener.up

    def ring(self) -> None:
        """From any thread."""
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
            self.loop.call_soon_threadsafe(self.event.set)

    async def wait(self, timeout: float) -> None:
        """Until the deploy changed (or might have), at most ``timeout`` seconds. A change
        committed since the last wait returns at once: read after this, not before."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), timeout)
        self.event.clear()


class _Bells:
    """Every follower of this process, by deploy, and the listeners they share."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._followers: dict[int, set[Follower]] = {}
        self._listeners: dict[tuple[asyncio.AbstractEventLoop, str], _Listener] = {}

    def ring(self, deploy_id: int) -> None:
        with self._lock:
            followers = list(self._followers.get(deploy_id, ()))
        for follower in followers:
            follower.ring()

    def ring_all(self, listener: _Listener) -> None:
        with self._lock:
            followers = [f for fs in self._followers.values() for f in fs]
        for follower in followers:
            if follower.listener is listener:
                follower.ring()

    def add(self, follower: Follower, address: str | None) -> None:
        with self._lock:
            self._followers.setdefault(follower.deploy_id, set()).add(follower)
            if address is None:
                return
            listener = self._listeners.get((follower.loop, address))
            if listener is None:
                listener = self._listeners[(follower.loop, address)] = _Listener()
                listener.task = follower.loop.create_task(self._listen(listener, address))
            listener.followers += 1
            follower.listener = listener

    def remove(self, follower: Follower) -> None:
        with self._lock:
            followers = self._followers.get(follower.deploy_id, set())
            followers.discard(follower)
            if not followers:
                self._followers.pop(follower.deploy_id, None)
            listener = follower.listener
            if listener is None:
                return
            listener.followers -= 1
            if listener.followers > 0:
                return
            for key, value in list(self._listeners.items()):
                if value is listener:
                    del self._listeners[key]
        if listener.task is not None:
            listener.task.cancel()

    async def _listen(self, listener: _Listener, address: str) -> None:
        import psycopg  # only installed with the postgresql extra, only needed here

        attempt = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    address, autocommit=True, connect_timeout=CONNECT_TIMEOUT
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    attempt, listener.up = 0, True
                    self.ring_all(listener)  # whatever changed while nobody listened
                    async for notice in conn.notifies():
                        if notice.payload.isascii() and notice.payload.isdigit():
                            self.ring(int(notice.payload))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # followers poll meanwhile; listen again shortly
                listener.up = False
                pause = RETRY[min(attempt, len(RETRY) - 1)]
                attempt += 1
                log.warning("listening for deploy changes failed (%s); again in %.1fs", exc, pause)
                await asyncio.sleep(pause)
            finally:
                listener.up = False


_BELLS = _Bells()


def _address(database_url: str) -> str | None:
    """The libpq address of a PostgreSQL database URL, None for other databases."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def follow(database_url: str, deploy_id: int) -> AsyncIterator[Follower]:
    """A follower of ``deploy_id`` for as long as the block runs (on PostgreSQL, this process
    listens while it has any)."""
    follower = Follower(deploy_id, asyncio.get_running_loop())
    _BELLS.add(follower, _address(database_url))
    try:
        yield follower
    finally:
        _BELLS.remove(follower)
