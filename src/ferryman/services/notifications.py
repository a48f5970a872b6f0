"""Notification channels of a space (settings sealed, secrets never returned), the events the
services emit (each becomes one delivery per matching channel, rendered in the channel's
language), and the deliveries with every attempt. A channel's destination (URL or SMTP host)
is checked when it is saved: an address inside the install's networks is refused unless a
superuser allowed it (``ferryman.outbound``); the dispatcher checks again at delivery.

Deliveries are a queue of ``db/claims.py`` (``DELIVERIES``): a worker claims a due one
(``claim_delivery``: ``pending`` → ``sending`` under its holder token and a lease in the
database's clock), renews the lease while it sends (``renew_delivery``) and records the
attempt behind the fence (``record_attempt``): a claim that was lost — its lease ran out and
another worker took the delivery over — records nothing, so an attempt is never counted
twice nor a status overwritten. A delivery whose worker died is taken over once its lease
ends."""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ferryman.db import claims
from ferryman.db.clock import db_now
from ferryman.db.models import (
    Deploy,
    NotifyChannel,
    NotifyDelivery,
    Project,
    Ticket,
    User,
)
from ferryman.db.session import Database
from ferryman.domain import validate
from ferryman.domain.permissions import Role
from ferryman.domain.statuses import DeliveryStatus, DeployStatus
from ferryman.errors import Conflict, ValidationError
from ferryman.notify.channels import CHANNELS
from ferryman.notify.message import EVENTS, Message, render
from ferryman.outbound import Outbound, for_database
from ferryman.said import Said, said
from ferryman.services import group_roles
from ferryman.services.audit import Actor, record
from ferryman.services.spaces import visible_space

MASK = "***"
ATTEMPTS = 6  # a delivery is tried at most this many times
# the queue of due deliveries: a pending one is claimed when its next attempt is due, and
# held as ``sending`` under its holder token and lease until its attempt is recorded
DELIVERIES = claims.Queue(
    NotifyDelivery,
    ready=(DeliveryStatus.PENDING,),
    held=DeliveryStatus.SENDING,
    due="next_attempt_at",
)


def _settings_out(channel: NotifyChannel, plain: dict[str, Any]) -> dict[str, Any]:
    secret = {*CHANNELS[channel.kind].SECRET_KEYS, "secret", "password", "token"}
    return {k: (MASK if k in secret and v else v) for k, v in plain.items()}


def channel_dict(db: Database, channel: NotifyChannel) -> dict[str, Any]:
    plain = json.loads(db.box.open(channel.settings))
    return {
        "id": channel.id,
        "name": channel.name,
        "kind": channel.kind,
        "language": channel.language,
        "events": channel.events,
        "projects": channel.projects,
        "envs": channel.envs,
        "enabled": channel.enabled,
        "settings": _settings_out(channel, plain),
        "created_by": channel.created_by,
    }


def _check(
    kind: str, settings: dict[str, Any], events: list[str], language: str, out: Outbound
) -> None:
    if kind not in CHANNELS:
        raise ValidationError(said("kind: one of %(kinds)s", kinds=sorted(CHANNELS)))
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        raise ValidationError(
            said("events: unknown %(unknown)s; known: %(known)s", unknown=unknown, known=EVENTS)
        )
    if language not in ("en", "zh_CN"):
        raise ValidationError(said("language: en or zh_CN"))
    CHANNELS[kind].check(settings, out)


def _merged(db: Database, row: NotifyChannel | None, settings: dict[str, Any]) -> dict[str, Any]:
    if row is None:
        return dict(settings)
    old = json.loads(db.box.open(row.settings))
    return {k: (old.get(k, "") if v == MASK else v) for k, v in settings.items()}


def _row(s: Session, space_id: int, name: str) -> NotifyChannel | None:
    return s.scalar(
        select(NotifyChannel).where(NotifyChannel.space_id == space_id, NotifyChannel.name == name)
    )


def save_channel(
    db: Database,
    actor: Actor,
    space: int | str,
    name: str,
    kind: str,
    settings: dict[str, Any],
    *,
    language: str = "en",
    events: list[str] | None = None,
    projects: list[str] | None = None,
    envs: list[str] | None = None,
    enabled: bool = True,
    outbound: Outbound | None = None,
) -> dict[str, Any]:
    """Create or replace a channel; a secret sent back as ``***`` keeps its saved value. The
    destination is resolved and checked outside the transaction (DNS can be slow)."""
    validate.name(name, "channel name")
    with db.read() as s:
        found = visible_space(s, actor, space, "notify.manage")
        checked = _merged(db, _row(s, found.id, name), settings)
    _check(kind, checked, events or [], language, outbound or for_database(db))
    with db.transaction() as s:
        found = visible_space(s, actor, space, "notify.manage")
        row = _row(s, found.id, name)
        merged = _merged(db, row, settings)
        if merged != checked:
            raise Conflict(f"channel {name} changed while it was being saved; try again")
        created = row is None
        if row is None:
            row = NotifyChannel(space_id=found.id, name=name, kind=kind, settings="")
            s.add(row)
        row.kind, row.settings = kind, db.box.seal(json.dumps(merged))
        row.language, row.events = language, list(events or [])
        row.projects, row.envs, row.enabled = list(projects or []), list(envs or []), enabled
        row.created_by = row.created_by or actor.username
        s.flush()
        record(
            s,
            actor,
            "notify.create" if created else "notify.update",
            f"space:{found.name}/channel:{name}",
            space_id=found.id,
            kind=kind,
        )
        return channel_dict(db, row)


def _channel(s: Session, actor: Actor, channel_id: int, action: str) -> NotifyChannel:
    from ferryman.services.authz import hidden, require

    row = s.get(NotifyChannel, channel_id)
    if row is None:
        raise hidden(f"channel #{channel_id}")
    require(s, actor, action, space_id=row.space_id, what=f"channel #{channel_id}")
    return row


def list_channels(db: Database, actor: Actor, space: int | str) -> list[dict[str, Any]]:
    with db.read() as s:
        found = visible_space(s, actor, space, "notify.read")
        rows = s.scalars(
            select(NotifyChannel)
            .where(NotifyChannel.space_id == found.id)
            .order_by(NotifyChannel.name)
        ).all()
        return [channel_dict(db, r) for r in rows]


def delete_channel(db: Database, actor: Actor, channel_id: int) -> None:
    with db.transaction() as s:
        row = _channel(s, actor, channel_id, "notify.manage")
        record(s, actor, "notify.delete", f"channel:{row.name}", space_id=row.space_id)
        s.delete(row)


def deliveries(db: Database, actor: Actor, channel_id: int, limit: int = 50) -> list[Any]:
    with db.read() as s:
        _channel(s, actor, channel_id, "notify.read")
        rows = s.scalars(
            select(NotifyDelivery)
            .where(NotifyDelivery.channel_id == channel_id)
            .order_by(NotifyDelivery.id.desc())
            .limit(min(limit, 500))
        ).all()
        return [
            {
                "id": r.id,
                "event": r.event,
                "title": r.message.get("title"),
                "status": r.status,
                "attempts": r.attempts,
                "history": [_attempt(a) for a in r.history],
                "created_at": r.created_at.isoformat(),
                "sent_at": r.sent_at.isoformat() if r.sent_at else None,
            }
            for r in rows
        ]


def _entry(at: str, error: str) -> dict[str, Any]:
    """An attempt as stored: its error in English and, when Ferryman said it (``said``: the
    channel is gone, a refused destination, a redirect), its template and values too, so a
    page says it in the viewer's language. What a receiver answered is a value, never
    translated."""
    entry: dict[str, Any] = {"at": at, "ok": not error, "error": error[:300], "v": 2}
    if isinstance(error, Said) and len(error) <= 300:
        entry["said"] = _kept(error)
    return entry


def _kept(message: Said) -> dict[str, Any]:
    """A said message as JSON keeps it: a nested one (why an address is refused) nested."""

    def value(v: Any) -> Any:
        if isinstance(v, Said):
            return {"said": _kept(v)}
        if isinstance(v, list | tuple):
            return [str(x) for x in v]
        return v if isinstance(v, int | float | str) else str(v)

    return {
        "template": message.template,
        "values": {k: value(v) for k, v in message.values.items()},
    }


def _again(kept: Any) -> Said | None:
    """What ``_kept`` stored, said again (None when it is not one)."""
    if not isinstance(kept, dict) or not isinstance(kept.get("template"), str):
        return None
    values = {}
    for key, v in dict(kept.get("values") or {}).items():
        nested = _again(v.get("said")) if isinstance(v, dict) else None
        values[key] = nested if nested is not None else v
    try:
        return Said(kept["template"], values)
    except (KeyError, ValueError, TypeError):  # a template this version no longer fills
        return None


def _attempt(entry: dict[str, Any]) -> dict[str, Any]:
    """An attempt as shown. Entries written before version 2 could hold a receiver's answer
    after the status (``HTTP 500: <body>``): only the status of those is shown. An error
    Ferryman said is a ``Said`` again (the same English; a page says it in its language)."""
    shown = {k: v for k, v in entry.items() if k not in ("v", "said")}
    error = str(shown.get("error") or "")
    if entry.get("v") != 2 and re.match(r"HTTP \d{3}\b", error):
        shown["error"] = error[:8]
    again = _again(entry.get("said"))
    if again is not None and str(again) == error:
        shown["error"] = again
    return shown


def test_channel(db: Database, actor: Actor, channel_id: int) -> int:
    """Queue a test message on a channel; returns the delivery id."""
    with db.transaction() as s:
        row = _channel(s, actor, channel_id, "notify.manage")
        message = Message(
            event="test",
            title="Ferryman test message" if row.language == "en" else "摆渡人测试消息",
            text=f"channel {row.name} ({row.kind}) works",
            link="/",
            recipients=[actor_email(s, actor)] if actor.id else [],
        )
        delivery = NotifyDelivery(channel_id=row.id, event="test", message=message.to_dict())
        s.add(delivery)
        s.flush()
        record(s, actor, "notify.test", f"channel:{row.name}", space_id=row.space_id)
        return delivery.id


def actor_email(s: Session, actor: Actor) -> str:
    user = s.get(User, actor.id) if actor.id else None
    return user.email if user and user.email else ""


# --- events --------------------------------------------------------------------------------


def emit(
    s: Session,
    event: str,
    project: Project,
    env: str,
    context: dict[str, Any],
    link: str,
) -> int:
    """One delivery per enabled channel of the project's space that takes this event, project
    and environment (in the caller's transaction). Returns how many."""
    channels = s.scalars(
        select(NotifyChannel).where(
            NotifyChannel.space_id == project.space_id, NotifyChannel.enabled.is_(True)
        )
    ).all()
    count = 0
    base = {"project": project.name, "env": env, **context}
    for channel in channels:
        if channel.events and event not in channel.events:
            continue
        if channel.projects and project.name not in channel.projects:
            continue
        if channel.envs and env not in channel.envs:
            continue
        message = render(event, base, channel.language, link)
        s.add(NotifyDelivery(channel_id=channel.id, event=event, message=message.to_dict()))
        count += 1
    return count


def approvers_emails(s: Session, project: Project, exclude: int | None) -> list[str]:
    """Emails of those who may approve the project's tickets: its masters and owners — by
    their own role, a group's (``group_roles``) or a project override — and nobody whose
    override lowers them or who no longer holds a role in the space."""
    ids = group_roles.at_least(group_roles.project_roles(s, project), Role.master)
    ids.discard(exclude or -1)
    rows = s.scalars(select(User).where(User.id.in_(ids), User.is_active.is_(True))).all()
    return sorted(u.email for u in rows if u.email)


def ticket_event(s: Session, event: str, ticket: Ticket, actor: Actor, comment: str = "") -> None:
    project = s.get(Project, ticket.project_id)
    if project is None:
        return
    from ferryman.db.models import Space

    space = s.get(Space, project.space_id)
    if event == "ticket.submitted":
        recipients = approvers_emails(s, project, ticket.created_by)
    else:
        creator = s.get(User, ticket.created_by) if ticket.created_by else None
        recipients = [creator.email] if creator and creator.email else []
    emit(
        s,
        event,
        project,
        ticket.env,
        {
            "ticket_id": ticket.id,
            "title": ticket.title,
            "ref": ticket.ref or ticket.target_release,
            "actor": actor.username,
            "comment": comment,
            "recipients": recipients,
        },
        f"/s/{space.name if space else 'default'}/tickets/{ticket.id}",
    )


def deploy_event(s: Session, event: str, deploy: Deploy) -> None:
    project = s.get(Project, deploy.project_id)
    if project is None:
        return
    from ferryman.db.models import Space

    space = s.get(Space, project.space_id)
    error = deploy.error or {}
    details = error.get("details") or {}
    name = event
    if deploy.kind == "rollback" and event in ("deploy.succeeded", "deploy.failed"):
        name = event.replace("deploy.", "rollback.", 1)
    emit(
        s,
        name,
        project,
        deploy.env,
        {
            "deploy_id": deploy.id,
            "kind": deploy.kind,
            "ref": deploy.ref or deploy.target_release,
            "release": deploy.release_name or deploy.target_release,
            "actor": deploy.requested_by_name,
            "hosts": len(deploy.hosts or []) or "",
            "error": error.get("message", ""),
            "host": details.get("host", ""),
            "stage": details.get("stage", ""),
            "command": details.get("command", ""),
            "stderr": (details.get("stderr_tail") or "")[-500:],
        },
        f"/s/{space.name if space else 'default'}/deploys/{deploy.id}",
    )


def emit_for_deploy(db: Database, deploy_id: int, event: str) -> None:
    """``deploy.started`` and friends, from the worker (never fails the deploy)."""
    with db.transaction() as s:
        deploy = s.get(Deploy, deploy_id)
        if deploy is not None:
            deploy_event(s, event, deploy)


def warn_long_locks(db: Database, minutes: float) -> int:
    """Announce (once) every deploy that has held its environment for more than ``minutes``:
    running, or paused waiting for a person."""
    from ferryman.db.models import utcnow

    cutoff = utcnow() - timedelta(minutes=minutes)
    count = 0
    with db.transaction() as s:
        for deploy in s.scalars(
            select(Deploy).where(
                Deploy.status.in_((DeployStatus.RUNNING, DeployStatus.PAUSED)),
                Deploy.started_at < cutoff,
            )
        ):
            if (deploy.options or {}).get("lock_warned"):
                continue
            deploy.options = {**(deploy.options or {}), "lock_warned": True}
            project = s.get(Project, deploy.project_id)
            if project is None or deploy.started_at is None:
                continue
            held = int((utcnow() - deploy.started_at).total_seconds() // 60)
            from ferryman.db.models import Space

            space = s.get(Space, project.space_id)
            emit(
                s,
                "lock.held_long",
                project,
                deploy.env,
                {"deploy_id": deploy.id, "minutes": held, "actor": deploy.requested_by_name},
                f"/s/{space.name if space else 'default'}/deploys/{deploy.id}",
            )
            count += 1
    return count


# --- deliveries: the dispatcher's queue ------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """A delivery claimed for one attempt: its message, its channel's kind and settings
    (opened; empty with ``problem`` set when they cannot be used) and this claim's holder
    token, the fence its attempt is recorded behind."""

    delivery_id: int
    holder: str
    message: Message
    kind: str
    settings: dict[str, Any]
    problem: str = ""


def claim_delivery(
    db: Database, worker: str, lease: float, skip: Collection[int] = ()
) -> Claimed | None:
    """Claim the delivery due first (one whose worker died is due again once its lease
    ran out: taken over) for ``lease`` seconds; None when nothing is due. ``skip``: the ones
    this round already tried (each is tried at most once a round)."""
    where = (NotifyDelivery.id.notin_(list(skip)),) if skip else ()
    with db.transaction() as s:
        taken = claims.claim_due(
            s, DELIVERIES, worker, lease, 1, read=("channel_id", "message"), where=where
        )
        if not taken:
            return None
        claim = taken[0]
        channel_id, message = claim.row
        channel = s.get(NotifyChannel, channel_id)
        kind, sealed = (channel.kind, channel.settings) if channel else ("", "")
    problem: str = ""
    settings: dict[str, Any] = {}
    if not kind:
        problem = said("the channel is gone")
    elif kind not in CHANNELS:
        problem = said("unknown channel kind %(channel)s", channel=kind)
    else:
        try:
            settings = json.loads(db.box.open(sealed))
        except Exception as exc:  # a key changed or a row damaged: an attempt that failed
            problem = said(
                "the channel's settings cannot be opened (%(error)s)", error=type(exc).__name__
            )
    return Claimed(claim.id, claim.holder, Message.from_dict(message), kind, settings, problem)


def renew_delivery(db: Database, delivery_id: int, holder: str, lease: float) -> bool:
    """Extend the lease of a delivery being sent: True while ``holder`` still holds it."""
    with db.transaction() as s:
        return claims.renew(s, DELIVERIES, delivery_id, holder, lease) is not None


def record_attempt(db: Database, delivery_id: int, holder: str, error: str, backoff: float) -> str:
    """Record one attempt (``error`` empty: it was sent), behind the claim's fence: the
    delivery's new status (``sent``, ``failed`` after ``ATTEMPTS``, else ``pending`` again
    after a doubling backoff), or "" when ``holder`` no longer holds it — a claim that was
    taken over records nothing."""
    with db.transaction() as s:
        row: NotifyDelivery | None = claims.held(s, DELIVERIES, delivery_id, holder)
        if row is None:
            return ""
        now = db_now(s)
        row.attempts += 1
        row.history = [*row.history, _entry(now.isoformat(), error)]
        if not error:
            row.status, row.sent_at = DeliveryStatus.SENT, now
        elif row.attempts >= ATTEMPTS:
            row.status = DeliveryStatus.FAILED
        else:
            row.status = DeliveryStatus.PENDING
            row.next_attempt_at = now + timedelta(seconds=backoff * 2 ** (row.attempts - 1))
        # a sent or failed delivery keeps who finished it; a retry is anybody's again
        claims.let_go(DELIVERIES, row, keep_holder=row.status != DeliveryStatus.PENDING)
        return row.status
