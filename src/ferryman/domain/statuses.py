"""Every status Ferryman stores and shows, one ``StrEnum`` per kind, in one place.

The values are a public contract: they are what the database holds, what the API and
``--json`` answer and what the docs name, so a member's value never changes (a deploy ends
``success``, the ticket that ran it ``succeeded``: two kinds, two words). A ``StrEnum`` member
*is* its string (``DeployStatus.SUCCESS == "success"``, ``str()``, f-strings, ``json`` and the
database drivers all give the value), so a value read back from the database compares equal to
a member, and a member written goes out as the same string as before.

The groups (active, finished, final, …) are derived here from the members, never spelled out
again elsewhere; so is the one mapping between two kinds, :data:`DEPLOY_TO_TICKET`.

Pure: nothing here imports ``db/`` or ``services/`` (``tests/test_layers.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class DeployStatus(StrEnum):
    """A deploy's (or rollback's, or config-only deploy's) status; ``deploys.status``. The
    deploy is also the worker's job, so this is the job queue's state too::

        queued → running → success | failed | cancelled
        running → paused (a gray release waiting) → queued (continue, abort or rollback asked)
        queued → cancelled (it never started)

    Active (:data:`DEPLOY_ACTIVE`): queued, running, paused — the environment is busy (one
    active deploy per environment). Finished (:data:`DEPLOY_FINISHED`): success, failed,
    cancelled — nothing changes it any more."""

    QUEUED = "queued"  # waiting for a worker to claim it (or for its ``not_before``)
    RUNNING = "running"  # a worker holds it and runs it
    PAUSED = "paused"  # a gray release waiting (manual pause, canary) with no worker busy
    SUCCESS = "success"  # every host serves the release (a rollout: within ``max_failed``)
    FAILED = "failed"  # it stopped on an error (its ``error`` says where and why)
    CANCELLED = "cancelled"  # stopped by someone: before it started, or at a safe point


DEPLOY_ACTIVE: Final = (DeployStatus.QUEUED, DeployStatus.RUNNING, DeployStatus.PAUSED)
DEPLOY_FINISHED: Final = tuple(s for s in DeployStatus if s not in DEPLOY_ACTIVE)


class TicketStatus(StrEnum):
    """A release ticket's (上线单) state; ``tickets.status``. Moves only through
    ``domain/tickets.check_transition``::

        draft → pending_approval → approved | rejected
        approved → queued → running → succeeded | failed
        draft, pending_approval, approved, queued, running → cancelled
        failed → queued (a retry); approved, failed → pending_approval (changed since)

    Open (:data:`TICKET_OPEN`): draft, pending_approval, approved — nothing queued yet.
    Final (:data:`TICKET_FINAL`): rejected, succeeded, cancelled — it goes nowhere from there
    (``failed`` is not final: its deploy can be retried). From queued on, the state follows
    its deploy's (:data:`DEPLOY_TO_TICKET`)."""

    DRAFT = "draft"  # being written; not submitted for review
    PENDING_APPROVAL = "pending_approval"  # submitted, waiting for a reviewer
    APPROVED = "approved"  # may be deployed (or needs no approval)
    REJECTED = "rejected"  # a reviewer said no
    QUEUED = "queued"  # its deploy is queued
    RUNNING = "running"  # its deploy runs (or is paused: a gray release waiting)
    SUCCEEDED = "succeeded"  # its deploy ended ``success``
    FAILED = "failed"  # its deploy failed; a retry may queue it again
    CANCELLED = "cancelled"  # someone cancelled it, or its deploy


TICKET_OPEN: Final = (TicketStatus.DRAFT, TicketStatus.PENDING_APPROVAL, TicketStatus.APPROVED)
TICKET_FINAL: Final = frozenset(
    {TicketStatus.REJECTED, TicketStatus.SUCCEEDED, TicketStatus.CANCELLED}
)

# A deploy's status → the state of the ticket it runs (carried over in the same transaction
# as the deploy's change, ``services/queue.sync_ticket``). The one place the two vocabularies
# meet: ``success`` → ``succeeded``; ``paused`` is still ``running`` to the ticket. Keyed by
# ``str``: a status read from the database (a plain string) finds its entry.
DEPLOY_TO_TICKET: Final[Mapping[str, TicketStatus]] = MappingProxyType(
    {
        DeployStatus.QUEUED: TicketStatus.QUEUED,
        DeployStatus.RUNNING: TicketStatus.RUNNING,
        DeployStatus.PAUSED: TicketStatus.RUNNING,  # a gray release waiting after its canary
        DeployStatus.SUCCESS: TicketStatus.SUCCEEDED,
        DeployStatus.FAILED: TicketStatus.FAILED,
        DeployStatus.CANCELLED: TicketStatus.CANCELLED,
    }
)


def ticket_status_for(deploy_status: str) -> TicketStatus | None:
    """The ticket state a deploy's status means (None for a value that is no deploy status)."""
    return DEPLOY_TO_TICKET.get(deploy_status)


class HostStatus(StrEnum):
    """One host's part in one deploy; ``deploy_hosts.status`` (``hosts[].status`` in the API).
    Push mode: running from its probe, then final. Pull mode: pending until its task ends,
    then the task's last word (``skipped`` shown as ``success``).

    Final (:data:`HOST_FINAL`): every value but pending and running — no host row of an ended
    deploy says it is still running (``Recorder.settle_hosts``)."""

    PENDING = "pending"  # not reached yet (a pull host: its task is not done)
    RUNNING = "running"  # probed; the deploy works on it
    SUCCESS = "success"  # serves the new release (a rollback: the target)
    FAILED = "failed"  # failed on it; ``error`` says why, it was put back where possible
    REVERTED = "reverted"  # had switched, was pointed back at what it served before
    UNCHANGED = "unchanged"  # the deploy ended before it changed anything there
    ROLLED_BACK = "rolled_back"  # a pull host that rolled itself back after a failure
    UNREACHABLE = "unreachable"  # a pull host that did not poll or report in time
    CANCELLED = "cancelled"  # a pull host's task stopped with its deploy


HOST_FINAL: Final = tuple(
    s for s in HostStatus if s not in (HostStatus.PENDING, HostStatus.RUNNING)
)


class StageStatus(StrEnum):
    """One stage of a deploy (``prepare``, ``checkout``, …): ``stages[].status`` of the deploy
    (a JSON column, shown by the API, the console and ``ferryman logs``)."""

    RUNNING = "running"  # started, not ended
    SUCCESS = "success"  # ended well
    FAILED = "failed"  # raised: the deploy fails (or pauses, a rollout)
    LOST = "lost"  # was running when its worker died (set by the recovery)


class PullTaskStatus(StrEnum):
    """A pull-mode host's task for one deploy; ``agent_tasks.status``::

        pending (not its batch yet) → due → running → success | failed | rolled_back | skipped
        pending, due, running → unreachable (late) | cancelled (the deploy stopped)

    Active (:data:`PULL_ACTIVE`): due, running — handed out. Final (:data:`PULL_FINAL`):
    success, failed, rolled_back, skipped, unreachable, cancelled; the first four are what a
    host may report (``POST /agent/{host}/report``, ``docs/pull-mode.md``)."""

    PENDING = "pending"  # waits for its batch
    DUE = "due"  # its host is to fetch it at its next poll
    RUNNING = "running"  # the host fetched it (claimed it) and runs it
    SUCCESS = "success"  # the host switched (a rollback: restored the target)
    FAILED = "failed"  # the host failed before switching
    ROLLED_BACK = "rolled_back"  # the host failed after switching and switched back
    SKIPPED = "skipped"  # the host already served that release
    UNREACHABLE = "unreachable"  # the host did not poll, or did not report, in time
    CANCELLED = "cancelled"  # the deploy stopped before (or while) the host ran it


PULL_ACTIVE: Final = (PullTaskStatus.DUE, PullTaskStatus.RUNNING)
PULL_FINAL: Final = (
    PullTaskStatus.SUCCESS,
    PullTaskStatus.FAILED,
    PullTaskStatus.ROLLED_BACK,
    PullTaskStatus.SKIPPED,
    PullTaskStatus.UNREACHABLE,
    PullTaskStatus.CANCELLED,
)
PULL_REPORTED: Final = PULL_FINAL[:4]  # what a host's last word may be


class DeliveryStatus(StrEnum):
    """One notification to one channel; ``notify_deliveries.status``::

        pending → sending (claimed) → sent | failed, or pending again to retry

    Waiting (:data:`DELIVERY_WAITING`): pending, sending. Final: sent, failed."""

    PENDING = "pending"  # due at ``next_attempt_at`` (a first try, or a retry)
    SENDING = "sending"  # a dispatcher claimed it and sends it
    SENT = "sent"  # the channel took it
    FAILED = "failed"  # given up after its attempts


DELIVERY_WAITING: Final = (DeliveryStatus.PENDING, DeliveryStatus.SENDING)


class WatchStatus(StrEnum):
    """A post-deploy watch (``watch:``); ``deploy_watches.status``. Watching is the only
    active state; the others are final."""

    WATCHING = "watching"  # health checks run every interval until the deadline
    PASSED = "passed"  # every round passed until the deadline
    FAILED = "failed"  # a round failed: notified, or rolled back (``on_failure``)
    ENDED = "ended"  # a newer deploy of the environment ended it


class ReleaseState(StrEnum):
    """A release directory on one host, as the records know it; ``releases.state``."""

    COMPLETE = "complete"  # fully transferred: kept, a rollback may go back to it
    REMOVED = "removed"  # pruned or cleaned up: gone from the host


class RolloutState(StrEnum):
    """A gray release's progress (``domain/rollout.Rollout.state``, inside ``deploys.rollout``
    and the API's ``rollout.state``)."""

    RUNNING = "running"  # batches going on
    PAUSED = "paused"  # waiting for a person (or a canary analysis that could not judge)
    DONE = "done"  # every batch went through
    ABORTED = "aborted"  # stopped by its failure budget, its canary or a person: rolled back
    HALTED = "halted"  # stopped, the hosts left where they are (``on_failure: halt``)


class AnalysisVerdict(StrEnum):
    """One metric of a canary analysis in one interval; ``analysis_measurements.verdict``."""

    PASS = "pass"  # the canary compared well
    FAIL = "fail"  # it did not: counts toward ``failure_limit``
    ERROR = "error"  # could not be judged (no answer, no data): the rollout pauses


# Every kind, by the name the test and the docs use for it.
KINDS: Final = (
    DeployStatus,
    TicketStatus,
    HostStatus,
    StageStatus,
    PullTaskStatus,
    DeliveryStatus,
    WatchStatus,
    ReleaseState,
    RolloutState,
    AnalysisVerdict,
)
