"""The worker: claims queued deploys from the database and runs them, a few at a time.

Embedded in ``ferryman serve`` by default; any number of workers may share one database (a
claim is a conditional update, so each deploy runs once). Deploys left ``running`` by a worker
that died are failed once their lock lease has run out.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from datetime import timedelta

from ferryman.config.settings import Settings
from ferryman.db.models import utcnow
from ferryman.db.session import Database
from ferryman.pipeline.runner import run_deploy
from ferryman.services import deploys

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._slots = asyncio.Semaphore(settings.worker_concurrency)
        self._running: set[asyncio.Task[str]] = set()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Called after a deploy is queued in this process, so it starts without polling lag."""
        self._wake.set()

    async def run(self) -> None:
        await asyncio.to_thread(self._reap_orphans)
        while True:
            await self._slots.acquire()
            deploy_id = None
            try:
                deploy_id = await asyncio.to_thread(deploys.claim_next, self.db, self.name)
            except Exception:
                log.exception("claiming a deploy failed")
            if deploy_id is None:
                self._slots.release()
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.settings.worker_poll_seconds)
                except TimeoutError:
                    pass
                continue
            task = asyncio.create_task(self._run_one(deploy_id))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run_one(self, deploy_id: int) -> str:
        try:
            return await run_deploy(self.db, self.settings, deploy_id, self.name)
        except Exception:
            log.exception("deploy %s could not be run", deploy_id)
            return "failed"
        finally:
            self._slots.release()

    def _reap_orphans(self) -> None:
        cutoff = utcnow() - timedelta(seconds=self.settings.lock_lease_seconds)
        for deploy_id in deploys.fail_orphans(self.db, cutoff):
            log.warning("deploy %s was left running by a lost worker; marked failed", deploy_id)

    async def drain(self) -> None:
        """Wait for running deploys to finish (used on shutdown and in tests)."""
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)
