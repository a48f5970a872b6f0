"""A claimer for tests that play a worker: it claims (or takes over) deploys as the worker does
(``services.queue``) and keeps each claim's holder token, the fence its run carries
(``run_deploy``, ``recover``, ``renew_lease``, ``finish_if_held``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from ferryman.config.settings import Settings
from ferryman.db.session import Database
from ferryman.jobs.recover_job import recover
from ferryman.services import queue


class Claimer:
    def __init__(self, db: Database, name: str) -> None:
        self.db, self.name = db, name
        self.holders: dict[int, str] = {}  # deploy id -> its last claim's holder token

    def claim_next(
        self,
        queues: Sequence[str] | None = None,
        lease: float = 60.0,
        *,
        rollbacks_only: bool = False,
    ) -> int | None:
        """``queue.claim_next`` as this worker; the claim's token is kept."""
        got = queue.claim(self.db, self.name, queues, lease, rollbacks_only=rollbacks_only)
        if got is None:
            return None
        self.holders[got.id] = got.holder
        return got.id

    def take_over_lost(self, lease: float) -> list[int]:
        """``queue.take_over_lost`` as this worker: the deploys taken over; their tokens kept."""
        got = queue.take_over_lost(self.db, self.name, lease)
        self.holders.update({claim.id: claim.holder for claim in got})
        return [claim.id for claim in got]

    def holder(self, deploy_id: int) -> str:
        """The token of this worker's last claim of ``deploy_id``."""
        return self.holders[deploy_id]


def rescue(db: Database, settings: Settings, deploy_id: int, lease: float) -> None:
    """As a worker named "rescuer" would: take ``deploy_id`` over once its lease has run out,
    then recover it to its end (a recovery that finds the project lock still held is tried
    again); each part within a minute."""
    rescuer = Claimer(db, "rescuer")
    deadline = time.monotonic() + 60
    while rescuer.take_over_lost(lease) != [deploy_id]:
        assert time.monotonic() < deadline, f"deploy #{deploy_id}'s lease never ran out"
        time.sleep(0.2)
    deadline = time.monotonic() + 60
    while not asyncio.run(recover(db, settings, deploy_id, rescuer.holder(deploy_id))):
        assert time.monotonic() < deadline, f"deploy #{deploy_id} was never recovered"
        time.sleep(0.5)
