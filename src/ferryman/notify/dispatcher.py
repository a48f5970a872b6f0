"""Delivering notifications: a job per message. Due deliveries are claimed one at a time
through ``db/claims.py`` (``services/notifications.py`` declares the queue: a conditional
update gives the claim a holder token and a lease in the database's clock, so two workers
never send the same one), sent with a timeout while the lease is renewed (``jobs/held.py``),
and on failure tried again after a doubling backoff, at most ``ATTEMPTS`` times; every attempt
is recorded on the delivery (a short status line, never what the receiver answered), behind
the claim's fence: a claim that was lost — the worker froze past its lease and another took
the delivery over — records nothing. A delivery whose worker died is taken over when its
lease ends (at least once: the receiver may see it twice, the record counts it once).

Every request goes through ``ferryman.outbound``: internal destinations are refused at
delivery time too (DNS may have changed since the channel was saved), and the checked address
is the one connected to. Runs beside the deploys in every worker; it never touches one."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from functools import partial

from ferryman.config.settings import Settings
from ferryman.db.session import Database
from ferryman.jobs import held
from ferryman.notify.channels import CHANNELS
from ferryman.notify.channels.base import TIMEOUT, DeliveryFailed
from ferryman.outbound import Outbound
from ferryman.services import notifications
from ferryman.services.notifications import ATTEMPTS, Claimed

__all__ = ["ATTEMPTS", "LEASE", "deliver_due", "outbound_of", "run"]

log = logging.getLogger(__name__)
# seconds a claim holds a delivery: several sends' timeouts, renewed every third while it
# sends; a delivery whose worker died is sent again this long after it was claimed
LEASE = max(60.0, TIMEOUT * 6)
WORKER = f"{socket.gethostname()}:{os.getpid()}:notify"  # when no worker names itself


def outbound_of(settings: Settings) -> Outbound:
    return Outbound(allow=settings.outbound_allow)


async def _send(claimed: Claimed, settings: Settings, out: Outbound) -> str:
    """One attempt: "" when the channel took it, else why not (one short line)."""
    if claimed.problem:
        return claimed.problem
    message = claimed.message
    if message.link.startswith("/"):
        message.link = settings.public_url + message.link
    try:
        await CHANNELS[claimed.kind].send(message, claimed.settings, out)
    except DeliveryFailed as exc:  # what Ferryman said (``said``) keeps its template
        said = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
        return said or "failed"
    except Exception as exc:  # a channel bug must not stop the others
        log.exception("notification %s", claimed.delivery_id)
        return type(exc).__name__
    return ""


async def deliver_due(
    db: Database,
    settings: Settings,
    out: Outbound | None = None,
    limit: int = 20,
    *,
    worker: str = WORKER,
    lease: float = LEASE,
) -> int:
    """Send what is due now, each delivery at most once in this round; returns how many
    were attempted. ``out`` defaults to the server's policy (``FERRYMAN_OUTBOUND_ALLOW``)."""
    out = out or outbound_of(settings)
    tried: list[int] = []
    while len(tried) < limit:
        claimed = await asyncio.to_thread(
            notifications.claim_delivery, db, worker, lease, tuple(tried)
        )
        if claimed is None:
            break
        tried.append(claimed.delivery_id)
        try:
            error = await held.run_held(
                _send(claimed, settings, out),
                partial(
                    notifications.renew_delivery, db, claimed.delivery_id, claimed.holder, lease
                ),
                lease,
                f"notification {claimed.delivery_id}",
                log,
            )
        except held.ClaimLost:
            continue  # taken over: whoever holds it now records it
        recorded = await asyncio.to_thread(
            notifications.record_attempt,
            db,
            claimed.delivery_id,
            claimed.holder,
            error,
            settings.notify_backoff_seconds,
        )
        if not recorded:
            log.warning("notification %s: taken over, attempt not recorded", claimed.delivery_id)
    return len(tried)


async def run(
    db: Database,
    settings: Settings,
    stop: asyncio.Event,
    every: float = 1.0,
    *,
    worker: str = WORKER,
    lease: float = LEASE,
) -> None:
    out = outbound_of(settings)
    while not stop.is_set():
        try:
            sent = await deliver_due(db, settings, out, worker=worker, lease=lease)
        except Exception:
            log.exception("delivering notifications")
            sent = 0
        if not sent:
            try:
                await asyncio.wait_for(stop.wait(), every)
            except TimeoutError:
                pass
