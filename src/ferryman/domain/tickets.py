"""The release ticket (上线单) state machine: every transition is checked here and nowhere else.

    draft → pending_approval → approved | rejected
    approved → queued → running → succeeded | failed
    draft, pending_approval, approved, queued, running → cancelled
    failed → queued (a retry ships the same approved commit again)
    approved, failed → pending_approval (what it would run changed since the approval)

A ticket whose environment needs no approval goes from draft straight to approved. A rollback
ticket is created approved (only masters may create one) and queued at once.
"""

from __future__ import annotations

from ferryman.domain.statuses import DEPLOY_TO_TICKET, TICKET_FINAL, TicketStatus
from ferryman.errors import InvalidTransition
from ferryman.said import said

# The states (``domain/statuses.TicketStatus``), by the short names the rules use.
DRAFT = TicketStatus.DRAFT
PENDING = TicketStatus.PENDING_APPROVAL
APPROVED = TicketStatus.APPROVED
REJECTED = TicketStatus.REJECTED
QUEUED = TicketStatus.QUEUED
RUNNING = TicketStatus.RUNNING
SUCCEEDED = TicketStatus.SUCCEEDED
FAILED = TicketStatus.FAILED
CANCELLED = TicketStatus.CANCELLED

STATES = tuple(TicketStatus)
FINAL = TICKET_FINAL

# keyed by plain strings too: a state read from the database is one
TRANSITIONS: dict[str, frozenset[TicketStatus]] = {
    DRAFT: frozenset({PENDING, APPROVED, CANCELLED}),
    PENDING: frozenset({APPROVED, REJECTED, CANCELLED}),
    APPROVED: frozenset({QUEUED, CANCELLED, PENDING}),
    REJECTED: frozenset(),
    QUEUED: frozenset({RUNNING, CANCELLED, FAILED}),
    RUNNING: frozenset({SUCCEEDED, FAILED, CANCELLED}),
    SUCCEEDED: frozenset(),
    FAILED: frozenset({QUEUED, PENDING}),  # a retry of its deploy; back to review
    CANCELLED: frozenset(),
}

# What a user asks for, in words, for error messages.
VERBS: dict[str, str] = {
    PENDING: "submit",
    APPROVED: "approve",
    REJECTED: "reject",
    QUEUED: "deploy",
    CANCELLED: "cancel",
}

# A deploy's status → the state of the ticket it runs (named once, in domain/statuses).
FROM_DEPLOY = DEPLOY_TO_TICKET


def can_move(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def check_transition(ticket_id: int, current: str, target: str) -> None:
    """Raise ``InvalidTransition`` (409) unless ``current → target`` is allowed."""
    if can_move(current, target):
        return
    verb = VERBS.get(target, f"move to {target}")
    allowed = sorted(s.value for s in TRANSITIONS.get(current, frozenset()))
    raise InvalidTransition(
        said(
            "cannot %(verb)s ticket #%(id)s: it is %(status)s (from there it can go to: "
            "%(allowed)s)",
            verb=verb,
            id=ticket_id,
            status=current,
            allowed=allowed,
        )
        if allowed
        else said(
            "cannot %(verb)s ticket #%(id)s: it is %(status)s (it is final)",
            verb=verb,
            id=ticket_id,
            status=current,
        ),
        ticket_id=ticket_id,
        state=current,
        wanted=target,
    )
