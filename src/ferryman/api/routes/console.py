"""The live console: a deploy's log, paged (``GET …/log?after=``), and a WebSocket that replays
from a cursor and then follows live (``WS …/stream?after=``).

The stream reads the stored log (lines reach the database within ``FLUSH_SECONDS`` of being
printed) and polls it, so a viewer on any server sees what a worker on any machine writes; a
viewer connecting, reconnecting or leaving never touches the deploy. Messages are JSON:
``{"type": "line", ...}`` for each log line, ``{"type": "deploy", ...}`` whenever its status or
stages change, and ``{"type": "end", "status": ...}`` once it has ended (or paused: a gray
release waiting for someone to continue it) and every line was sent.

Access is checked again while streaming, every ``RECHECK_SECONDS``: a viewer whose token was
revoked, whose account was disabled, or who left the project's space is cut off with close
code 1008 (policy violation) and the reason.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect

from ferryman.api.deps import DB, CurrentActor, perm, websocket_actor, websocket_route
from ferryman.db.session import Database
from ferryman.errors import FerrymanError
from ferryman.services import deploy_views
from ferryman.services.deploys import FINISHED

router = APIRouter(prefix="/deploys", tags=["deploys"])
POLL_SECONDS = 0.25
PAGE = 1000
RECHECK_SECONDS = 2.0
POLICY_VIOLATION = 1008


class AccessLost(Exception):
    """The viewer may no longer read this deploy (the socket was closed)."""


@router.get("/{deploy_id}/log", openapi_extra=perm("deploy.read"))
def get_log(
    deploy_id: int,
    db: DB,
    actor: CurrentActor,
    after: int = Query(0, ge=0, description="the id of the last line you have"),
    limit: int = Query(PAGE, ge=1, le=5000),
) -> dict[str, Any]:
    """Lines after the cursor, oldest first, each with host, stage, stream and time;
    ``next`` is the cursor for the following page."""
    return deploy_views.log_page(db, actor, deploy_id, after, limit)


@websocket_route(router, "/{deploy_id}/stream", "deploy.read")
async def stream(websocket: WebSocket, deploy_id: int, after: int = 0) -> None:
    """Replay from ``after`` then follow live. Refusals close the socket with code 4000 +
    the HTTP status (4401, 4403, 4404) and the error message as the reason."""
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

    try:
        await _follow(websocket, db, deploy_id, max(after, 0), still_allowed)
    except (WebSocketDisconnect, AccessLost):
        return  # the viewer left (or was cut off); the deploy does not care


async def _follow(
    websocket: WebSocket,
    db: Database,
    deploy_id: int,
    cursor: int,
    still_allowed: Callable[[], Awaitable[None]],
) -> None:
    shown: tuple[str, str] | None = None
    while True:
        await still_allowed()
        deploy = await asyncio.to_thread(deploy_views.get, db, deploy_id)
        lines = await asyncio.to_thread(deploy_views.logs_after, db, deploy_id, cursor, PAGE)
        for line in lines:
            await websocket.send_json({"type": "line", **line})
            cursor = line["id"]
        state = (deploy["status"], repr(deploy["stages"]))
        if state != shown:
            shown = state
            await websocket.send_json({"type": "deploy", "deploy": deploy})
        if len(lines) == PAGE:
            continue  # replaying: no waiting between pages
        if deploy["status"] in FINISHED or deploy["status"] == "paused":
            # a last look: lines flushed together with the final status
            tail = await asyncio.to_thread(deploy_views.logs_after, db, deploy_id, cursor, PAGE)
            if tail:
                continue
            await websocket.send_json({"type": "end", "status": deploy["status"], "next": cursor})
            await websocket.close()
            return
        await asyncio.sleep(POLL_SECONDS)
