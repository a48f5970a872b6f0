"""The states of a pull-mode host's task (``services.agents`` keeps them; the worker waits on
them)."""

from __future__ import annotations

from dataclasses import dataclass

from ferryman.domain.statuses import PULL_ACTIVE, PULL_FINAL, PullTaskStatus

ACTIVE = PULL_ACTIVE  # handed out: the host is fetching or running it
FINAL = PULL_FINAL


@dataclass(frozen=True)
class HostTask:
    """A host's task as the worker sees it: its state, the release the host served before
    ("" when none: a first deploy) and whether the server took its go-ahead (its first
    report: from then on it may have switched)."""

    status: str
    previous: str = ""
    went_ahead: bool = False

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @property
    def may_have_switched(self) -> bool:
        """It switched (success), or went silent or was stopped after its go-ahead: it is
        told to roll back. A host that failed, rolled itself back or was already on the
        release did not switch."""
        return self.status == PullTaskStatus.SUCCESS or (
            self.went_ahead
            and self.status in (PullTaskStatus.UNREACHABLE, PullTaskStatus.CANCELLED)
        )
