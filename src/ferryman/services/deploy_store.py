"""The database behind a running deploy's store (``pipeline.ports.DeployStore``).

Every call runs in a thread and is retried while the database is out (``db.outage``), for as
long as the deploy is still its holder's: before a write the holder confirms it still owns
the deploy once its last lease may have run out, and each write is fenced by the owner — the
holder token of the run's claim (``services/queue.py``, ``db/claims.py``) — in its own
transaction (``deploy_records``), so a run that lost its deploy records nothing, even when its
own worker claimed the deploy again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

from ferryman.commands.migrations import Listing
from ferryman.db.outage import retry_through_outages
from ferryman.db.session import Database
from ferryman.domain.analysis import Measurement
from ferryman.domain.pull import HostTask
from ferryman.domain.rollout import Rollout
from ferryman.errors import OwnershipLost
from ferryman.pipeline.context import Context
from ferryman.pipeline.ports import Holder
from ferryman.services import (
    agents,
    analysis,
    deploy_records,
    deploy_views,
    migrations,
    rollouts,
)
from ferryman.services.projects import space_of_project

P = ParamSpec("P")
T = TypeVar("T")


def database_store(db: Database) -> Callable[[Context], DatabaseStore]:
    """For ``new_context(store_for=...)``: the store over ``db`` of the new context's deploy,
    held by that context (its owner: the claim's holder token; its lease; whether it lost the
    deploy)."""

    def store_for(ctx: Context) -> DatabaseStore:
        return DatabaseStore(db, ctx.deploy_id, ctx.project_id, ctx.env_name, ctx)

    return store_for


class DatabaseStore:
    def __init__(
        self, db: Database, deploy_id: int, project_id: int, env: str, holder: Holder
    ) -> None:
        self.db = db
        self.deploy_id = deploy_id
        self.project_id = project_id
        self.env = env
        self.holder = holder
        self._space_id: int | None = None

    async def _call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        await self.holder.ensure_owner()
        return await retry_through_outages(self._still_ours, fn, *args, **kwargs)

    def _still_ours(self) -> None:
        if self.holder.lost:
            raise OwnershipLost(self.holder.lost)

    # --- reads ---------------------------------------------------------------------------
    async def complete_releases(self) -> dict[str, set[str]]:
        return await self._call(deploy_views.complete_releases, self.db, self.project_id, self.env)

    async def good_releases(self) -> dict[str, set[str]]:
        return await self._call(deploy_views.good_releases, self.db, self.project_id, self.env)

    async def release_order(self) -> dict[str, int]:
        return await self._call(deploy_views.release_order, self.db, self.project_id, self.env)

    async def live_releases(self) -> dict[str, str]:
        return await self._call(deploy_views.live_releases, self.db, self.project_id, self.env)

    async def bad_releases(self) -> set[str]:
        return await self._call(rollouts.bad_releases, self.db, self.project_id, self.env)

    async def hosts_before(self, releases_dir: str) -> dict[str, str]:
        return await self._call(deploy_views.hosts_before, self.db, self.deploy_id, releases_dir)

    async def take_rollout_request(self) -> str:
        return await self._call(rollouts.take_request, self.db, self.deploy_id)

    # --- writes, fenced by the owner (the claim's holder token) ----------------------------
    async def set_resolved(self, commit: str, release_name: str) -> None:
        await self._call(
            deploy_records.set_resolved,
            self.db,
            self.deploy_id,
            commit=commit,
            release_name=release_name,
            owner=self.holder.owner,
        )

    async def record_releases(
        self, commit: str, name: str, hosts: Sequence[str], state: str
    ) -> None:
        await self._call(
            deploy_records.record_releases,
            self.db,
            self.project_id,
            self.env,
            self.deploy_id,
            commit,
            name,
            hosts,
            state,
            self.holder.owner,
        )

    async def mark_removed(self, removed: dict[str, list[str]]) -> None:
        await self._call(
            deploy_records.mark_removed,
            self.db,
            self.project_id,
            self.env,
            removed,
            deploy_id=self.deploy_id,
            owner=self.holder.owner,
        )

    async def set_live(self, live: dict[str, str | None]) -> None:
        await self._call(
            deploy_records.set_live,
            self.db,
            self.project_id,
            self.env,
            self.deploy_id,
            live,
            self.holder.owner,
        )

    async def save_rollout(self, state: Rollout) -> None:
        await self._call(rollouts.save, self.db, self.deploy_id, state, self.holder.owner)

    async def mark_bad(self, release: str) -> None:
        await self._call(
            rollouts.mark_bad,
            self.db,
            self.project_id,
            self.env,
            release,
            deploy_id=self.deploy_id,
            owner=self.holder.owner,
        )

    async def set_options(self, values: dict[str, Any]) -> None:
        await self._call(
            deploy_records.set_options, self.db, self.deploy_id, values, self.holder.owner
        )

    async def record_analysis(self, measurements: Sequence[Measurement]) -> None:
        await self._call(
            analysis.record, self.db, self.deploy_id, list(measurements), self.holder.owner
        )

    async def record_migrations(self, release: str, listing: Listing | None, error: str) -> None:
        await self._call(
            migrations.save_listing,
            self.db,
            self.project_id,
            self.env,
            self.deploy_id,
            release,
            listing,
            error,
            self.holder.owner,
        )

    # --- pull mode ---------------------------------------------------------------------------
    async def create_host_tasks(
        self,
        hosts: Sequence[str],
        action: str,
        release: str,
        previous: dict[str, str] | None = None,
    ) -> None:
        if self._space_id is None:
            self._space_id = await self._call(space_of_project, self.db, self.project_id)
        await self._call(
            agents.create_tasks,
            self.db,
            self.deploy_id,
            self._space_id,
            list(hosts),
            action,
            release,
            previous,
            self.holder.owner,
        )

    async def add_host_rows(self) -> None:
        await self._call(agents.host_rows, self.db, self.deploy_id, self.holder.owner)

    async def make_due(self, hosts: Sequence[str], action: str = "deploy") -> None:
        await self._call(
            agents.make_due, self.db, self.deploy_id, list(hosts), action, self.holder.owner
        )

    async def host_tasks(self, action: str = "deploy") -> dict[str, HostTask]:
        return await self._call(agents.task_states, self.db, self.deploy_id, action)

    async def mark_unreachable(self, fetch_within: float, run_within: float) -> list[str]:
        return await self._call(
            agents.mark_unreachable,
            self.db,
            self.deploy_id,
            fetch_within,
            run_within,
            self.holder.owner,
        )

    async def cancel_host_tasks(self) -> None:
        await self._call(agents.cancel_open, self.db, self.deploy_id, self.holder.owner)

    async def environment_deploys(self) -> list[int]:
        return await self._call(
            deploy_views.environment_deploys, self.db, self.project_id, self.env
        )
