"""Delivering notifications: a job per message. Due deliveries are claimed one by one (a
conditional update, so two workers never send the same one), sent with a timeout, and on
failure tried again after a doubling backoff, at most ``ATTEMPTS`` times; every attempt is
recorded on the delivery (a short status line, never what the receiver answered). Every
request goes through ``ferryman.outbound``: internal destinations are refused at delivery time
too (DNS may have changed since the channel was saved), and the checked address is the one
connected to. Runs beside the deploys in every worker; it never touches one."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta

from sqlalchemy import select, update

from ferryman.config.settings import Settings
from ferryman.db.clock import db_now
from ferryman.db.models import NotifyChannel, NotifyDelivery
from ferryman.db.session import Database, rowcount
from ferryman.notify.channels import CHANNELS
from ferryman.notify.channels.base import DeliveryFailed
from ferryman.notify.message import Message
from ferryman.outbound import Outbound

log = logging.getLogger(__name__)
ATTEMPTS = 6
STUCK = timedelta(minutes=5)  # a "sending" left by a dead worker is due again after this


def _claim(db: Database, limit: int) -> list[int]:
    claimed = []
    with db.transaction() as s:
        now = db_now(s)
        s.execute(
            update(NotifyDelivery)
            .where(NotifyDelivery.status == "sending", NotifyDelivery.next_attempt_at < now - STUCK)
            .values(status="pending")
        )
        due = s.scalars(
            select(NotifyDelivery.id)
            .where(NotifyDelivery.status == "pending", NotifyDelivery.next_attempt_at <= now)
            .order_by(NotifyDelivery.id)
            .limit(limit)
        ).all()
        for delivery_id in due:
            done = s.execute(
                update(NotifyDelivery)
                .where(NotifyDelivery.id == delivery_id, NotifyDelivery.status == "pending")
                .values(status="sending", next_attempt_at=now)
            )
            if rowcount(done):
                claimed.append(delivery_id)
    return claimed


def _load(db: Database, delivery_id: int) -> tuple[Message, str, dict[str, object]] | None:
    with db.read() as s:
        delivery = s.get(NotifyDelivery, delivery_id)
        channel = s.get(NotifyChannel, delivery.channel_id) if delivery else None
        if delivery is None or channel is None:
            return None
        settings = json.loads(db.box.open(channel.settings))
        return Message.from_dict(delivery.message), channel.kind, settings


def _record(db: Database, delivery_id: int, error: str, backoff: float) -> None:
    with db.transaction() as s:
        now = db_now(s)
        delivery = s.get(NotifyDelivery, delivery_id)
        if delivery is None:
            return
        delivery.attempts += 1
        delivery.history = [
            *delivery.history,
            {"at": now.isoformat(), "ok": not error, "error": error[:300], "v": 2},
        ]
        if not error:
            delivery.status, delivery.sent_at = "sent", now
        elif delivery.attempts >= ATTEMPTS:
            delivery.status = "failed"
        else:
            delivery.status = "pending"
            delivery.next_attempt_at = now + timedelta(
                seconds=backoff * 2 ** (delivery.attempts - 1)
            )


def outbound_of(settings: Settings) -> Outbound:
    return Outbound(allow=settings.outbound_allow)


async def deliver_due(
    db: Database, settings: Settings, out: Outbound | None = None, limit: int = 20
) -> int:
    """Send what is due now; returns how many were attempted. ``out`` defaults to the
    server's policy (``FERRYMAN_OUTBOUND_ALLOW``)."""
    out = out or outbound_of(settings)
    claimed = await asyncio.to_thread(_claim, db, limit)
    for delivery_id in claimed:
        loaded = await asyncio.to_thread(_load, db, delivery_id)
        if loaded is None:
            continue
        message, kind, channel_settings = loaded
        if message.link.startswith("/"):
            message.link = settings.public_url + message.link
        error = ""
        try:
            await CHANNELS[kind].send(message, channel_settings, out)
        except DeliveryFailed as exc:
            error = str(exc) or "failed"
        except Exception as exc:  # a channel bug must not stop the others
            log.exception("notification %s", delivery_id)
            error = type(exc).__name__
        await asyncio.to_thread(_record, db, delivery_id, error, settings.notify_backoff_seconds)
    return len(claimed)


async def run(db: Database, settings: Settings, stop: asyncio.Event, every: float = 1.0) -> None:
    out = outbound_of(settings)
    while not stop.is_set():
        try:
            sent = await deliver_due(db, settings, out)
        except Exception:
            log.exception("delivering notifications")
            sent = 0
        if not sent:
            try:
                await asyncio.wait_for(stop.wait(), every)
            except TimeoutError:
                pass
