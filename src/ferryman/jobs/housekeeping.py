"""What a worker tidies when it starts: the workspaces that runs on this machine left behind
when they died (SIGKILL, a lost machine coming back). A workspace is
``workspaces/<space id>/deploy-<id>``; it is removed unless that deploy is running now (another
worker sharing this ``FERRYMAN_HOME`` may be building in it).

And what it does every few seconds beside its deploys (``periodic``): the post-deploy
watches that are due (``jobs/watch_job.py``) and the scheduled summaries whose period ended
(``services/summaries.py``), each claimed in the database so that one worker does it.

And once an hour (``retention``), claimed the same way: the logs past
``FERRYMAN_LOG_RETENTION`` and the artifacts nothing can use (``services/retention.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
from pathlib import Path

from sqlalchemy import select

from ferryman.config.settings import Settings
from ferryman.db.models import Deploy
from ferryman.db.session import Database
from ferryman.domain.statuses import DeployStatus

log = logging.getLogger(__name__)
_WORKSPACE = re.compile(r"deploy-([0-9]{1,18})")


def sweep_workspaces(db: Database, settings: Settings) -> int:
    """Remove the workspaces of deploys that are not running; returns how many."""
    root = settings.workspaces
    if not root.is_dir():
        return 0
    found: dict[int, list[Path]] = {}
    for space in root.iterdir():
        if not space.is_dir() or space.is_symlink():
            continue
        for each in space.iterdir():
            match = _WORKSPACE.fullmatch(each.name)
            if match and each.is_dir() and not each.is_symlink():
                found.setdefault(int(match.group(1)), []).append(each)
    if not found:
        return 0
    with db.read() as s:
        running = set(
            s.scalars(
                select(Deploy.id).where(
                    Deploy.id.in_(list(found)), Deploy.status == DeployStatus.RUNNING
                )
            )
        )
    removed = 0
    for deploy_id, paths in found.items():
        if deploy_id in running:
            continue
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    if removed:
        log.info("removed %d workspace(s) left by runs that ended without tidying", removed)
    return removed


PERIOD = 2.0  # seconds between rounds of the periodic jobs


async def periodic(db: Database, settings: Settings, stopping: asyncio.Event, worker: str) -> None:
    """Until ``stopping``: every ``PERIOD``, the due post-deploy watches (each round a task
    of its own: a slow one holds up nothing else, ``watch_job.Rounds``) and scheduled
    summaries (each claimed in the database: one worker does each). A round that fails
    (a database outage) is logged and the next one tries again."""
    from ferryman.jobs import watch_job
    from ferryman.services import summaries

    rounds = watch_job.Rounds()
    try:
        while not stopping.is_set():
            try:
                await rounds.start_due(db, settings, worker)
                await asyncio.to_thread(summaries.send_due, db)
            except Exception:
                log.warning("a round of the periodic jobs failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), PERIOD)
    finally:
        await rounds.close()


RETENTION_LOOK = 60.0  # seconds between looks at whether the hourly retention run is due


async def retention(db: Database, settings: Settings, stopping: asyncio.Event) -> None:
    """Until ``stopping``: the retention run, when this worker claims it (at most one an
    hour over every worker). It stops between batches once ``stopping`` is set."""
    from ferryman.services import retention as pruning

    while not stopping.is_set():
        try:
            if await asyncio.to_thread(pruning.claim_run, db):
                await asyncio.to_thread(pruning.run, db, settings, stopping=stopping.is_set)
        except Exception:
            log.warning("a retention run failed", exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), RETENTION_LOOK)
