"""Review (session 8): the scheduled summary (``services/summaries.py``) and the switches
that should silence it.

- A master turns a channel off (``enabled: false``) — a webhook that leaks, a team that left —
  and every event stops going to it (``notifications.emit`` reads only enabled channels). The
  summary looked its channel up by name alone and queued the space's figures to it anyway;
  the dispatcher sends what is queued whatever the channel's switch says.
- A superuser disables a space: its webhooks and agents are refused as if unknown, and nobody
  reads it — but its summary kept being queued to its channel every period.

No fleet, no network: the delivery rows ``send_due`` writes are the state asserted on (the
channel points at 127.0.0.1:9, allowed for this install; nothing is dispatched)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from ferryman.db.clock import db_now
from ferryman.db.models import NotifyDelivery
from ferryman.outbound import Outbound
from ferryman.services import notifications, spaces, summaries
from ferryman.services.audit import SYSTEM
from tests.api.world import World, build_world, fresh


@pytest.fixture
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # one world per test: each has its one space summary to itself
    yield build_world(tmp_path_factory.mktemp("review8-summaries"))


def _channel(w: World, space: str, enabled: bool = True) -> tuple[int, str]:
    name = fresh("report")
    row = notifications.save_channel(
        w.db,
        SYSTEM,
        space,
        name,
        "slack",
        {"url": "http://127.0.0.1:9/summary"},
        enabled=enabled,
        outbound=Outbound(allow=w.settings.outbound_allow),
    )
    return int(row["id"]), name


def _queued(w: World, channel_id: int) -> int:
    with w.db.read() as s:
        return len(
            s.scalars(
                select(NotifyDelivery.id).where(
                    NotifyDelivery.channel_id == channel_id,
                    NotifyDelivery.event == summaries.EVENT,
                )
            ).all()
        )


def _two_days_on(w: World) -> None:
    """``send_due`` as if two days had passed: yesterday's period has ended since it was set."""
    with w.db.read() as s:
        later = db_now(s) + timedelta(days=2)
    summaries.send_due(w.db, now=later)


def test_a_summary_is_not_queued_to_a_channel_that_was_turned_off(world):
    w = world
    channel_id, name = _channel(w, "other")
    summaries.set_summary(w.db, w.actors["other"], "other", channel=name, period="daily")
    # the owner turns the channel off: nothing more may go to it
    notifications.save_channel(
        w.db,
        w.actors["other"],
        "other",
        name,
        "slack",
        {"url": "http://127.0.0.1:9/summary"},
        enabled=False,
        outbound=Outbound(allow=w.settings.outbound_allow),
    )
    _two_days_on(w)
    assert _queued(w, channel_id) == 0


def test_a_disabled_spaces_summary_is_not_queued(world):
    w = world
    channel_id, name = _channel(w, "other")
    summaries.set_summary(w.db, w.actors["other"], "other", channel=name, period="daily")
    spaces.update_space(w.db, SYSTEM, "other", is_active=False)
    _two_days_on(w)
    assert _queued(w, channel_id) == 0


def test_an_enabled_channel_of_an_active_space_gets_its_summary_once(world):
    """The control: the same steps without the switch queue exactly one summary."""
    w = world
    channel_id, name = _channel(w, "other")
    summaries.set_summary(w.db, w.actors["other"], "other", channel=name, period="daily")
    _two_days_on(w)
    _two_days_on(w)  # the same period again: already sent
    assert _queued(w, channel_id) == 1
