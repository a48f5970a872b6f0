"""Notification channels of a space: secrets are never returned (``***``); every delivery and
its attempts can be read back."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response

from ferryman.api.deps import DB, CurrentActor, Id, SettingsDep, perm
from ferryman.api.schemas import ChannelBody, SummaryBody
from ferryman.api.team_views import Channel, Delivery, DeliveryQueued, Summary
from ferryman.db.session import Database
from ferryman.errors import NotFound
from ferryman.outbound import Outbound
from ferryman.services import notifications, summaries
from ferryman.services.audit import Actor

router = APIRouter(tags=["notifications"])


@router.get(
    "/spaces/{space}/channels", response_model=list[Channel], openapi_extra=perm("notify.read")
)
def list_channels(space: str, db: DB, actor: CurrentActor) -> list[dict[str, Any]]:
    return notifications.list_channels(db, actor, space)


@router.put(
    "/spaces/{space}/channels/{name}", response_model=Channel, openapi_extra=perm("notify.manage")
)
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


@router.get("/spaces/{space}/summary", response_model=Summary, openapi_extra=perm("notify.read"))
def get_summary(space: str, db: DB, actor: CurrentActor) -> dict[str, Any]:
    """The space's scheduled summary (报表汇总): which channel, daily or weekly, last sent."""
    return summaries.get_summary(db, actor, space)


@router.put("/spaces/{space}/summary", response_model=Summary, openapi_extra=perm("notify.manage"))
def set_summary(space: str, body: SummaryBody, db: DB, actor: CurrentActor) -> dict[str, Any]:
    """Send the space's deploys, failures, rollbacks, durations and top failing projects of
    each day or ISO week (UTC) to one of its channels, once per period; the first covers the
    first period that ends from now on. ``enabled: false`` stops it."""
    return summaries.set_summary(
        db, actor, space, channel=body.channel, period=body.period, enabled=body.enabled
    )


@router.delete(
    "/channels/{channel_id}", status_code=204, deprecated=True, openapi_extra=perm("notify.manage")
)
def delete_channel(channel_id: Id, db: DB, actor: CurrentActor) -> Response:
    notifications.delete_channel(db, actor, channel_id)
    return Response(status_code=204)


@router.post(
    "/channels/{channel_id}/test",
    status_code=202,
    deprecated=True,
    response_model=DeliveryQueued,
    openapi_extra=perm("notify.manage"),
)
def test_channel(channel_id: Id, db: DB, actor: CurrentActor) -> dict[str, Any]:
    """Queue a test message; its delivery shows up in the channel's deliveries."""
    return {"delivery": notifications.test_channel(db, actor, channel_id)}


@router.get(
    "/channels/{channel_id}/deliveries",
    response_model=list[Delivery],
    deprecated=True,
    openapi_extra=perm("notify.read"),
)
def deliveries(
    channel_id: Id, db: DB, actor: CurrentActor, limit: int = Query(50, ge=1, le=500)
) -> list[dict[str, Any]]:
    """Newest first, each with every attempt (when, ok, error)."""
    return notifications.deliveries(db, actor, channel_id, limit)


# --- the canonical addresses: a channel by its space and name, as PUT names it -------------
# (``/channels/{channel_id}…`` are deprecated aliases, kept for one release)


def _channel_id(db: Database, actor: Actor, space: str, name: str) -> int:
    for row in notifications.list_channels(db, actor, space):
        if row["name"] == name:
            return int(row["id"])
    raise NotFound(f"space {space} has no channel {name!r}")


@router.delete(
    "/spaces/{space}/channels/{name}", status_code=204, openapi_extra=perm("notify.manage")
)
def delete_space_channel(space: str, name: str, db: DB, actor: CurrentActor) -> Response:
    notifications.delete_channel(db, actor, _channel_id(db, actor, space, name))
    return Response(status_code=204)


@router.post(
    "/spaces/{space}/channels/{name}/test",
    status_code=202,
    response_model=DeliveryQueued,
    openapi_extra=perm("notify.manage"),
)
def test_space_channel(space: str, name: str, db: DB, actor: CurrentActor) -> dict[str, Any]:
    """Queue a test message; its delivery shows up in the channel's deliveries."""
    channel_id = _channel_id(db, actor, space, name)
    return {"delivery": notifications.test_channel(db, actor, channel_id)}


@router.get(
    "/spaces/{space}/channels/{name}/deliveries",
    response_model=list[Delivery],
    openapi_extra=perm("notify.read"),
)
def space_channel_deliveries(
    space: str,
    name: str,
    db: DB,
    actor: CurrentActor,
    limit: int = Query(50, ge=1, le=500),
) -> list[dict[str, Any]]:
    """Newest first, each with every attempt (when, ok, error)."""
    return notifications.deliveries(db, actor, _channel_id(db, actor, space, name), limit)
