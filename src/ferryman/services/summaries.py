"""Scheduled summaries (报表汇总): a space's deploys of the last day or ISO week — how many,
how many failed, rollbacks, durations, the projects that failed most — sent to one of the
space's notification channels once per period.

Masters set it per space (``set_summary``: API ``PUT /spaces/{space}/summary``, CLI
``ferryman notify summary``). Workers call ``send_due`` every few seconds beside their
deploys (``jobs/housekeeping.periodic``): a period is sent only after its key is moved into
``last_period`` by a conditional update (``db/claims.claim_once``), so with any number of
workers each period is sent once. The message goes through the channel's delivery queue like
every other notification.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ferryman.db import claims
from ferryman.db.clock import db_now
from ferryman.db.models import Deploy, NotifyChannel, NotifyDelivery, Project, Space, SpaceSummary
from ferryman.db.session import Database
from ferryman.domain.statuses import DeployStatus
from ferryman.errors import NotFound, ValidationError
from ferryman.notify.message import Message
from ferryman.services.audit import SYSTEM, Actor, record

PERIODS = ("daily", "weekly")
EVENT = "report.summary"
TOP = 5


@dataclass(frozen=True)
class Window:
    key: str  # 2026-11-29 or 2026-W48
    start: datetime
    end: datetime


def last_complete(period: str, now: datetime) -> Window:
    """The last day (UTC) or ISO week (Monday to Monday, UTC) that has ended by ``now``."""
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)
    if period == "daily":
        start = today - timedelta(days=1)
        return Window(start.date().isoformat(), start, today)
    monday = today - timedelta(days=today.weekday())
    start = monday - timedelta(days=7)
    year, week, _ = start.isocalendar()
    return Window(f"{year}-W{week:02d}", start, monday)


# --- the setting -------------------------------------------------------------------------


def _view(row: SpaceSummary | None, space: Space) -> dict[str, Any]:
    if row is None:
        return {"space": space.name, "enabled": False, "channel": None, "period": None}
    return {
        "space": space.name,
        "enabled": row.enabled,
        "channel": row.channel,
        "period": row.period,
        "last_period": row.last_period or None,
        "last_sent_at": row.last_sent_at.isoformat() if row.last_sent_at else None,
    }


def get_summary(db: Database, actor: Actor, space: int | str) -> dict[str, Any]:
    from ferryman.services.spaces import visible_space

    with db.read() as s:
        found = visible_space(s, actor, space, "notify.read")
        row = s.scalar(select(SpaceSummary).where(SpaceSummary.space_id == found.id))
        return _view(row, found)


def set_summary(
    db: Database,
    actor: Actor,
    space: int | str,
    *,
    channel: str,
    period: str,
    enabled: bool = True,
) -> dict[str, Any]:
    """Send the space's summary to ``channel`` every ``period`` (daily or weekly). The first
    one covers the first period that ends after this (nothing from before is sent)."""
    from ferryman.services.spaces import visible_space

    if period not in PERIODS:
        raise ValidationError(f"period: daily or weekly, not {period!r}")
    with db.transaction() as s:
        found = visible_space(s, actor, space, "notify.manage")
        if (
            s.scalar(
                select(NotifyChannel.id).where(
                    NotifyChannel.space_id == found.id, NotifyChannel.name == channel
                )
            )
            is None
        ):
            raise NotFound(f"space {found.name} has no notification channel {channel!r}")
        row = s.scalar(select(SpaceSummary).where(SpaceSummary.space_id == found.id))
        now = db_now(s)
        if row is None:
            row = SpaceSummary(space_id=found.id, channel=channel, period=period)
            s.add(row)
        if row.period != period or not row.last_period:
            row.last_period = last_complete(period, now).key  # from the next period on
        row.channel, row.period, row.enabled = channel, period, enabled
        row.updated_by, row.updated_at = actor.username, now
        s.flush()
        record(
            s,
            actor,
            "summary.set",
            f"space:{found.name}",
            space_id=found.id,
            channel=channel,
            period=period,
            enabled=enabled,
        )
        return _view(row, found)


# --- the report --------------------------------------------------------------------------


def report(s: Session, space_id: int, window: Window) -> dict[str, Any]:
    """The facts of one period: deploys (and config-only deploys) by outcome, rollbacks,
    durations of the finished ones, and the projects that failed most."""
    rows = s.execute(
        select(Deploy.kind, Deploy.status, Deploy.started_at, Deploy.finished_at, Project.name)
        .join(Project, Project.id == Deploy.project_id)
        .where(
            Project.space_id == space_id,
            Deploy.created_at >= window.start,
            Deploy.created_at < window.end,
        )
    ).all()
    deploys = [r for r in rows if r.kind != "rollback"]
    durations = sorted(
        (r.finished_at - r.started_at).total_seconds()
        for r in rows
        if r.started_at is not None and r.finished_at is not None
    )
    failing: dict[str, int] = {}
    for r in rows:
        if r.status == DeployStatus.FAILED:
            failing[r.name] = failing.get(r.name, 0) + 1
    top = sorted(failing.items(), key=lambda item: (-item[1], item[0]))[:TOP]
    return {
        "period": window.key,
        "deploys": len(deploys),
        "succeeded": sum(1 for r in deploys if r.status == DeployStatus.SUCCESS),
        "failed": sum(1 for r in deploys if r.status == DeployStatus.FAILED),
        "cancelled": sum(1 for r in deploys if r.status == DeployStatus.CANCELLED),
        "rollbacks": sum(1 for r in rows if r.kind == "rollback"),
        "duration_avg": round(sum(durations) / len(durations), 1) if durations else None,
        "duration_p50": durations[len(durations) // 2] if durations else None,
        "duration_max": durations[-1] if durations else None,
        "top_failing": [{"project": name, "failed": count} for name, count in top],
    }


_WORDS = {
    "en": {
        "title": "{space}: {kind} summary for {period}",
        "kind": {"daily": "daily", "weekly": "weekly"},
        "counts": "{deploys} deploys: {succeeded} succeeded, {failed} failed, "
        "{cancelled} cancelled; {rollbacks} rollbacks",
        "times": "duration: average {avg}, median {p50}, longest {max}",
        "top": "failed most: {top}",
        "none": "no deploys",
    },
    "zh_CN": {
        "title": "{space}：{period} {kind}报表",
        "kind": {"daily": "日", "weekly": "周"},
        "counts": "部署 {deploys} 次：成功 {succeeded}，失败 {failed}，取消 {cancelled}；"
        "回滚 {rollbacks} 次",
        "times": "耗时：平均 {avg}，中位 {p50}，最长 {max}",
        "top": "失败最多：{top}",
        "none": "没有部署",
    },
}


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 60:.1f}m" if value >= 90 else f"{value:.0f}s"


def message(space: str, period: str, facts: dict[str, Any], language: str, link: str) -> Message:
    words = _WORDS[language if language in _WORDS else "en"]
    kind = words["kind"][period]  # type: ignore[index]
    title = str(words["title"]).format(space=space, kind=kind, period=facts["period"])
    lines = [str(words["counts"]).format(**facts)] if facts["deploys"] or facts["rollbacks"] else []
    if not lines:
        lines = [str(words["none"])]
    if facts["duration_avg"] is not None:
        lines.append(
            str(words["times"]).format(
                avg=_seconds(facts["duration_avg"]),
                p50=_seconds(facts["duration_p50"]),
                max=_seconds(facts["duration_max"]),
            )
        )
    if facts["top_failing"]:
        top = ", ".join(f"{t['project']} ({t['failed']})" for t in facts["top_failing"])
        lines.append(str(words["top"]).format(top=top))
    return Message(event=EVENT, title=title, text="\n".join(lines), link=link, fields={**facts})


# --- sending -----------------------------------------------------------------------------


def send_due(db: Database, now: datetime | None = None) -> list[str]:
    """Queue every summary whose period has ended and was not sent yet; returns
    ``space/period`` of each queued. ``now``: the database's clock unless given."""
    sent: list[str] = []
    with db.read() as s:
        ids = list(s.scalars(select(SpaceSummary.id).where(SpaceSummary.enabled.is_(True))))
    for summary_id in ids:
        with db.transaction() as s:
            row = s.get(SpaceSummary, summary_id)
            if row is None or not row.enabled:
                continue
            window = last_complete(row.period, now or db_now(s))
            if row.last_period >= window.key or not claims.claim_once(
                s, SpaceSummary, row.id, "last_period", window.key
            ):
                continue
            space = s.get(Space, row.space_id)
            channel = s.scalar(
                select(NotifyChannel).where(
                    NotifyChannel.space_id == row.space_id, NotifyChannel.name == row.channel
                )
            )
            if space is None or not space.is_active or channel is None or not channel.enabled:
                # a disabled space, a channel removed or turned off: skipped, said
                record(s, SYSTEM, "summary.skipped", f"space:{row.space_id}", period=window.key)
                continue
            facts = report(s, space.id, window)
            text = message(space.name, row.period, facts, channel.language, f"/s/{space.name}")
            s.add(NotifyDelivery(channel_id=channel.id, event=EVENT, message=text.to_dict()))
            row.last_sent_at = db_now(s)
            record(
                s,
                SYSTEM,
                "summary.queued",
                f"space:{space.name}",
                space_id=space.id,
                period=window.key,
                channel=channel.name,
            )
            sent.append(f"{space.name}/{window.key}")
    return sent
