"""A worker process for the queue test: the real ``Worker`` with a runner that only records
which deploy it ran (``python -m tests.jobs.claim_worker URL LOG``), until the queue is empty."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from ferryman.config.settings import load_settings
from ferryman.db.session import Database
from ferryman.jobs.worker import Worker
from ferryman.services import deploys


async def main(url: str, log: Path) -> None:
    settings = load_settings({"FERRYMAN_DATABASE_URL": url, "FERRYMAN_WORKER_POLL": "0.05"})
    db = Database(url)
    done = log.open("a")

    async def record(db: Database, settings: object, deploy_id: int, worker: str) -> str:
        done.write(f"{deploy_id} {os.getpid()}\n")
        done.flush()
        await asyncio.to_thread(deploys.finish, db, deploy_id, "success", None)
        return "success"

    worker = Worker(db, settings, concurrency=4, runner=record)
    task = asyncio.create_task(worker.run())
    while await asyncio.to_thread(_queued, db) or worker._running:  # noqa: ASYNC110 - polls the database
        await asyncio.sleep(0.2)
    await worker.stop()
    task.cancel()
    db.dispose()


def _queued(db: Database) -> int:
    from sqlalchemy import func, select

    from ferryman.db.models import Deploy

    with db.read() as s:
        return (
            s.scalar(select(func.count()).select_from(Deploy).where(Deploy.status == "queued")) or 0
        )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
