"""Notification channels of a space: secrets are never returned (``***``); every delivery and
its attempts can be read back."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response

from ferryman.api.deps import DB, CurrentActor, SettingsDep, perm
from ferryman.api.schemas import ChannelBody
from ferryman.outbound import Outbound
from ferryman.services import notifications

router = APIRouter(tags=["notifications"])


@router.get("/spaces/{space}/channels", openapi_extra=perm("notify.read"))
def list_channels(space: str, db: DB, actor: CurrentActor) -> list[dict[str, Any]]:
    return notifications.list_channels(db, actor, space)


@router.put("/spaces/{space}/channels/{name}", openapi_extra=perm("notify.manage"))
def save_channel(
    space: str, name: str, body: ChannelBody, db: DB, settings: SettingsDep, actor: CurrentActor
) -> dict[str, Any]:
    """Create or replace a channel. ``events``, ``projects`` and ``envs`` filter what it gets
    (empty: everything). A secret sent back as ``***`` keeps its saved value."""
    return notifications.save_channel(
        db,
        actor,
        space,
        name,
        body.kind,
        body.settings,
        language=body.language,
        events=body.events,
        projects=body.projects,
        envs=body.envs,
        enabled=body.enabled,
        outbound=Outbound(allow=settings.outbound_allow),
    )


@router.delete("/channels/{channel_id}", status_code=204, openapi_extra=perm("notify.manage"))
def delete_channel(channel_id: int, db: DB, actor: CurrentActor) -> Response:
    notifications.delete_channel(db, actor, channel_id)
    return Response(status_code=204)


@router.post("/channels/{channel_id}/test", status_code=202, openapi_extra=perm("notify.manage"))
def test_channel(channel_id: int, db: DB, actor: CurrentActor) -> dict[str, Any]:
    """Queue a test message; its delivery shows up in the channel's deliveries."""
    return {"delivery": notifications.test_channel(db, actor, channel_id)}


@router.get("/channels/{channel_id}/deliveries", openapi_extra=perm("notify.read"))
def deliveries(
    channel_id: int, db: DB, actor: CurrentActor, limit: int = Query(50, ge=1, le=500)
) -> list[dict[str, Any]]:
    """Newest first, each with every attempt (when, ok, error)."""
    return notifications.deliveries(db, actor, channel_id, limit)
