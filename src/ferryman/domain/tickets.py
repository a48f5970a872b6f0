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

from ferryman.errors import InvalidTransition
from ferryman.said import said

DRAFT = "draft"
PENDING = "pending_approval"
APPROVED = "approved"
REJECTED = "rejected"
QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"

STATES = (DRAFT, PENDING, APPROVED, REJECTED, QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
FINAL = frozenset({REJECTED, SUCCEEDED, CANCELLED})

TRANSITIONS: dict[str, frozenset[str]] = {
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
VERBS = {
    PENDING: "submit",
    APPROVED: "approve",
    REJECTED: "reject",
    QUEUED: "deploy",
    CANCELLED: "cancel",
}

# A deploy's status → the state of the ticket it runs.
FROM_DEPLOY = {
    "queued": QUEUED,
    "running": RUNNING,
    "paused": RUNNING,  # a gray release waiting after its canary
    "success": SUCCEEDED,
    "failed": FAILED,
    "cancelled": CANCELLED,
}


def can_move(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def check_transition(ticket_id: int, current: str, target: str) -> None:
    """Raise ``InvalidTransition`` (409) unless ``current → target`` is allowed."""
    if can_move(current, target):
        return
    verb = VERBS.get(target, f"move to {target}")
    allowed = sorted(TRANSITIONS.get(current, frozenset()))
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
