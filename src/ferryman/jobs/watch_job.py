"""The worker's side of post-deploy watches (``services/watch.py``): claim the due ones, run
the environment's health checks on every host the deploy went to — the same checks, with
the same timeouts and retries, as after the switch (``pipeline/health.py``) — and write the
verdict. Nothing here is kept in memory between rounds: a watch is a row with a deadline,
so a restarted or different worker carries it on.
"""

from __future__ import annotations

import asyncio
import logging

from ferryman.config.project import parse_project
from ferryman.config.settings import Settings
from ferryman.db.session import Database
from ferryman.errors import FerrymanError
from ferryman.jobs import held
from ferryman.jobs.deploy_job import opened_variables
from ferryman.pipeline import health
from ferryman.pipeline.context import Context, new_context
from ferryman.pipeline.memory import MemoryStore, MemoryWriter
from ferryman.remote.executor import Target, fan_out
from ferryman.services import deploys, watch
from ferryman.services.space_access import space_access
from ferryman.vcs.base import Resolved

log = logging.getLogger(__name__)
LEASE = 300.0  # seconds a claim holds a watch; renewed every third of it while a round runs


def _context(db: Database, settings: Settings, deploy_id: int) -> Context:
    """The watched deploy's environment as it was deployed (its config snapshot), checked
    with its space's key and with the variables the checks after its switch saw (its
    release, commit, variables and secrets: the same checks must read the same values);
    its lines go nowhere but the verdict."""
    deploy, project = deploys.load(db, deploy_id)
    config = parse_project(deploy.config)
    ctx = new_context(
        settings,
        config,
        deploy.env,
        deploy_id=deploy.id,
        project_id=project.id,
        kind=deploy.kind,
        ref=deploy.ref,
        target_release=deploy.target_release,
        requested_by=deploy.requested_by_name,
        hosts=deploy.hosts,
        pinned_commit=deploy.commit,
        env_variables=opened_variables(db, deploy.variables),
        secret_names=deploy.secret_names,
        space=space_access(db, settings, project.space_id),
        store=MemoryStore(),
        writer=MemoryWriter(),
    )
    ctx.release = deploy.release_name
    ctx.resolved = Resolved(ref=deploy.ref, commit=deploy.commit)
    return ctx


async def check_once(ctx: Context) -> tuple[str, str] | None:
    """Every health check on every host; None, or (host, what failed) of one that failed."""
    failed: dict[str, tuple[str, str]] = {}

    async def one(target: Target) -> None:
        verdict = await health.check_host(ctx, target)
        if verdict is not None:
            failed[target.key] = verdict

    errors = await fan_out(ctx.targets, one, ctx.env.parallel)
    for key, exc in errors.items():
        why = exc.message if isinstance(exc, FerrymanError) else f"{type(exc).__name__}: {exc}"
        failed.setdefault(key, ("health check", why))
    for target in ctx.targets:
        if target.key in failed:
            what, why = failed[target.key]
            return target.key, f"{what}: {why}"
    return None


async def _round(
    db: Database, settings: Settings, claimed: watch.Claimed
) -> tuple[str, str] | None:
    ctx = await asyncio.to_thread(_context, db, settings, claimed.deploy_id)
    try:
        failed = await check_once(ctx)
    finally:
        await ctx.executor.close()
    if failed is None:
        return None
    host, why = failed
    return host, ctx.recorder.mask(why)  # a check's output may print a secret it was given


async def _watch_one(
    db: Database, settings: Settings, claimed: watch.Claimed, lease: float = LEASE
) -> str:
    """One round of one claimed watch, its lease renewed while it runs (``jobs/held.py``: a
    claim that was lost — the lease ran out while the database was unreachable, or a new
    deploy ended the watch — cancels the round, which then writes nothing); then its
    verdict, written only if this claim still holds the watch (``services/watch.py``)."""
    try:
        failed = await held.run_held(
            _round(db, settings, claimed),
            lambda: watch.renew(db, claimed.watch_id, claimed.holder, lease),
            lease,
            f"post-deploy watch #{claimed.watch_id}",
            log,
        )
    except held.ClaimLost:
        return watch.ENDED  # another claim (or nobody) decides
    if failed is None:
        return await asyncio.to_thread(watch.record_pass, db, claimed.watch_id, claimed.holder)
    host, why = failed
    log.warning("post-deploy watch #%d failed on %s: %s", claimed.watch_id, host, why)
    return await asyncio.to_thread(
        watch.record_failure, db, claimed.watch_id, claimed.holder, host, why
    )


ROUNDS = 20  # watch rounds one worker runs at once


class Rounds:
    """The watch rounds a worker's periodic loop runs, each a task of its own, at most
    ``cap`` at once: the loop claims what is due every period without waiting for rounds
    still running, so one project's slow check holds only its own watch — never another
    project's (or space's) watch, nor the summaries the same loop sends."""

    def __init__(self, cap: int = ROUNDS) -> None:
        self.cap = cap
        self.running: set[asyncio.Task[str]] = set()

    async def start_due(
        self, db: Database, settings: Settings, worker: str, lease: float = LEASE
    ) -> int:
        """Claim due watches for the room left and start their rounds; returns how many."""
        room = self.cap - len(self.running)
        if room <= 0:
            return 0
        claimed = await asyncio.to_thread(watch.claim_due, db, worker, lease, room)
        for item in claimed:
            task = asyncio.create_task(self._one(db, settings, item, lease))
            self.running.add(task)
            task.add_done_callback(self.running.discard)
        return len(claimed)

    @staticmethod
    async def _one(db: Database, settings: Settings, item: watch.Claimed, lease: float) -> str:
        try:
            return await _watch_one(db, settings, item, lease)
        except Exception as exc:  # tried again when its lease runs out
            log.warning("post-deploy watch #%d: %s", item.watch_id, exc)
            return ""

    async def close(self) -> None:
        """Stop the rounds still running (their leases run out; another worker carries the
        watches on) and wait for them to end."""
        for task in list(self.running):
            task.cancel()
        await asyncio.gather(*self.running, return_exceptions=True)


async def tick(db: Database, settings: Settings, worker: str, lease: float = LEASE) -> int:
    """One round, waited for: every due watch claimed and checked (at once, each on its own,
    as ``Rounds`` runs them); returns how many."""
    rounds = Rounds()
    started = await rounds.start_due(db, settings, worker, lease)
    await asyncio.gather(*rounds.running)
    return started
