"""The live console: a deploy's log, paged (``GET …/log?after=``), and a WebSocket that replays
from a cursor and then follows live (``WS …/stream?after=``).

The stream reads the stored log (lines reach the database within ``FLUSH_SECONDS`` of being
printed), so a viewer on any server sees what a worker on any machine writes; a viewer
connecting, reconnecting or leaving never touches the deploy. It reads again as soon as the
deploy changes — a new batch of lines, new stages, its end — and not on a fixed tick: the
writer's commit wakes it (``services/deploy_signals.py``: directly in this process, by
PostgreSQL ``NOTIFY`` from any other). A bounded wait stays underneath for what no signal
reaches: every ``POLL_SECONDS`` where only this process can wake it (SQLite, MariaDB, or while
PostgreSQL is not listened to), every ``FALLBACK_SECONDS`` while it is (a lost notification).

Messages are JSON: ``{"type": "line", ...}`` for each log line, ``{"type": "deploy", ...}``
whenever its status or stages change, and ``{"type": "end", "status": ...}`` once it has ended
(or paused: a gray release waiting for someone to continue it) and every line was sent. A
viewer that asks for ``?protocol=2`` gets its lines in pages instead, ``{"type": "lines",
"lines": [...]}`` (the same line objects, in the same order, at most ``PAGE_LINES`` lines and
``PAGE_BYTES`` of JSON a message): replaying a 100,000-line log is then 100 messages, not
100,000. Without it (an older CLI) the stream is what it always was (``docs/api.md``).

Access is checked again while streaming, every ``RECHECK_SECONDS``: a viewer whose token was
revoked, whose account was disabled, or who left the project's space is cut off with close
code 1008 (policy violation) and the reason.

A stream ends as soon as its socket closes, whoever closes it: the viewer leaving, or the
server shutting down (uvicorn closes every WebSocket with 1012, service restart, and then waits
for the handlers to return before it runs the lifespan shutdown — a handler that only noticed
on its next send would hold a graceful stop until the deploy it follows ended). So a watcher
awaits the socket's disconnect beside the reading loop, and whichever finishes first ends the
other. During a database outage the stream stays open and polls again once the database is
back; a stream that cannot even authorise its viewer closes with 1013 (try again later).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect

from ferryman.api.deps import DB, CurrentActor, Id, perm, websocket_actor, websocket_route
from ferryman.api.views import LogPage
from ferryman.db.outage import is_outage
from ferryman.db.session import Database
from ferryman.domain.statuses import DEPLOY_FINISHED, DeployStatus
from ferryman.errors import FerrymanError
from ferryman.services import deploy_signals, deploy_views

router = APIRouter(prefix="/deploys", tags=["deploys"])
POLL_SECONDS = 0.25  # between reads when another process's change may come unannounced
FALLBACK_SECONDS = 2.0  # between reads while every change is announced (PostgreSQL, listening)
PAGE = 1000
PAGE_LINES = 1000  # lines in one "lines" message (protocol 2), at most
PAGE_BYTES = 256 * 1024  # bytes of JSON in one, at most (a longer line goes alone)
PAGED = 2  # the first protocol that sends pages of lines
RECHECK_SECONDS = 2.0
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
OUTAGE_PAUSE = 1.0


class AccessLost(Exception):
    """The viewer may no longer read this deploy (the socket was closed)."""


@router.get("/{deploy_id}/log", response_model=LogPage, openapi_extra=perm("deploy.read"))
def get_log(
    deploy_id: Id,
    db: DB,
    actor: CurrentActor,
    after: int = Query(0, ge=0, le=2**63 - 1, description="the id of the last line you have"),
    limit: int = Query(PAGE, ge=1, le=5000),
) -> dict[str, Any]:
    """Lines after the cursor, oldest first, each with host, stage, stream and time;
    ``next`` is the cursor for the following page."""
    return deploy_views.log_page(db, actor, deploy_id, after, limit)


@websocket_route(router, "/{deploy_id}/stream", "deploy.read")
async def stream(websocket: WebSocket, deploy_id: int, after: int = 0, protocol: int = 1) -> None:
    """Replay from ``after`` then follow live; with ``protocol`` 2 or more, lines come in
    pages (``"lines"`` messages). Refusals close the socket with code 4000 + the HTTP status
    (4401, 4403, 4404) and the error message as the reason."""
    db: Database = websocket.app.state.db
    await websocket.accept()

    def authorise() -> None:
        actor = websocket_actor(websocket, db)
        deploy_views.visible_deploy(db, actor, deploy_id)

    try:
        await asyncio.to_thread(authorise)
    except FerrymanError as exc:
        await websocket.close(code=4000 + exc.http_status, reason=exc.message[:120])
        return
    except Exception as exc:
        if not is_outage(exc):
            raise
        await websocket.close(code=TRY_AGAIN_LATER, reason="the database is unavailable")
        return

    checked = time.monotonic()

    async def still_allowed() -> None:
        """Access again, at most every ``RECHECK_SECONDS`` (the same credentials as at the
        start: the token or session may have been revoked, the member removed)."""
        nonlocal checked
        if time.monotonic() - checked < RECHECK_SECONDS:
            return
        try:
            await asyncio.to_thread(authorise)
        except FerrymanError as exc:
            await websocket.close(code=POLICY_VIOLATION, reason=exc.message[:120])
            raise AccessLost from exc
        checked = time.monotonic()

    send = _send_pages if protocol >= PAGED else _send_each
    follower = asyncio.create_task(
        _follow(websocket, db, deploy_id, max(after, 0), still_allowed, send)
    )
    watcher = asyncio.create_task(_until_closed(websocket))
    tasks = (follower, watcher)
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        # asyncio.wait, not gather: a cancellation of this handler keeps its own message
        # (anyio, under Starlette's test client, tells its cancellations by it)
        await asyncio.wait(tasks)
    for task in tasks:
        failure = None if task.cancelled() else task.exception()
        if failure is not None and not isinstance(failure, WebSocketDisconnect | AccessLost):
            raise failure
    # else: the deploy ended, the viewer left (or was cut off), or the server is stopping


async def _until_closed(websocket: WebSocket) -> None:
    """Return once the socket is closed: by the viewer, or by the server shutting down.
    A viewer has nothing to say; whatever it sends is ignored."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


async def _read(db: Database, deploy_id: Id, cursor: int) -> tuple[dict[str, Any], list[Any]]:
    """The deploy, then its lines after the cursor (in that order: a finished status read
    first means every line flushed before it is in the page)."""
    deploy = await asyncio.to_thread(deploy_views.get, db, deploy_id)
    lines = await asyncio.to_thread(deploy_views.logs_after, db, deploy_id, cursor, PAGE)
    return deploy, lines


Sender = Callable[[WebSocket, list[dict[str, Any]]], Awaitable[None]]


async def _send_each(websocket: WebSocket, lines: list[dict[str, Any]]) -> None:
    """Protocol 1: a message per line."""
    for line in lines:
        await websocket.send_json({"type": "line", **line})


async def _send_pages(websocket: WebSocket, lines: list[dict[str, Any]]) -> None:
    """Protocol 2: the lines in pages, in order."""
    for page in pages(lines):
        await websocket.send_text(page)


def pages(lines: list[dict[str, Any]]) -> list[str]:
    """``"lines"`` messages holding ``lines`` in order: at most ``PAGE_LINES`` lines and
    ``PAGE_BYTES`` of JSON each (a line longer than that goes alone)."""
    out: list[str] = []
    for start in range(0, len(lines), PAGE_LINES):
        out += _fit(lines[start : start + PAGE_LINES])
    return out


def _fit(lines: list[dict[str, Any]]) -> list[str]:
    """``lines`` as one message, or halved until each half fits: one encoding per page in
    the usual case (short lines), not one per line."""
    # as Starlette's send_json encodes: compact, UTF-8 left as it is
    text = json.dumps({"type": "lines", "lines": lines}, separators=(",", ":"), ensure_ascii=False)
    if len(lines) == 1 or len(text.encode()) <= PAGE_BYTES:
        return [text]
    half = len(lines) // 2
    return _fit(lines[:half]) + _fit(lines[half:])


async def _follow(
    websocket: WebSocket,
    db: Database,
    deploy_id: Id,
    cursor: int,
    still_allowed: Callable[[], Awaitable[None]],
    send: Sender,
) -> None:
    async with deploy_signals.follow(db.url, deploy_id) as follower:
        await _follow_until_end(websocket, db, deploy_id, cursor, still_allowed, follower, send)


async def _follow_until_end(
    websocket: WebSocket,
    db: Database,
    deploy_id: Id,
    cursor: int,
    still_allowed: Callable[[], Awaitable[None]],
    follower: deploy_signals.Follower,
    send: Sender,
) -> None:
    shown: tuple[str, str] | None = None
    while True:
        try:
            await still_allowed()
            deploy, lines = await _read(db, deploy_id, cursor)
        except Exception as exc:
            if not is_outage(exc):
                raise
            await asyncio.sleep(OUTAGE_PAUSE)  # the database is out: the viewer waits with us
            continue
        if lines:
            await send(websocket, lines)
            cursor = lines[-1]["id"]
        state = (deploy["status"], repr(deploy["stages"]))
        if state != shown:
            shown = state
            await websocket.send_json({"type": "deploy", "deploy": deploy})
        if len(lines) == PAGE:
            continue  # replaying: no waiting between pages
        if deploy["status"] in DEPLOY_FINISHED or deploy["status"] == DeployStatus.PAUSED:
            # a last look: lines flushed together with the final status (an outage here
            # goes round again: the next read finds them)
            try:
                tail = await asyncio.to_thread(deploy_views.logs_after, db, deploy_id, cursor, PAGE)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                continue
            if tail:
                continue
            await websocket.send_json({"type": "end", "status": deploy["status"], "next": cursor})
            await websocket.close()
            return
        await follower.wait(FALLBACK_SECONDS if follower.notified else POLL_SECONDS)
