"""The one port through which a running deploy reads and records what it needs.

The stages never touch the database: they ask this store, which knows its deploy (id, project,
environment) and the worker that owns it. ``services.deploy_store.DatabaseStore`` implements
it over the database — every write fenced by the owner and retried through outages while the
deploy is still ours — and ``pipeline.memory.MemoryStore`` in memory, for tests of the stages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ferryman.commands.migrations import Listing
from ferryman.domain.analysis import Measurement
from ferryman.domain.pull import HostTask
from ferryman.domain.records import LogRecord, StepRecord
from ferryman.domain.rollout import Rollout


class RecordWriter(Protocol):
    """Where the recorder's batches go: all of a batch or none, and only while ``owner``
    holds the deploy (False, nothing written, once it does not). Raises
    ``errors.DatabaseUnavailable`` while the records cannot be reached."""

    def write_batch(
        self,
        deploy_id: int,
        lines: Sequence[LogRecord],
        steps: Sequence[StepRecord],
        hosts: dict[str, dict[str, str]],
        stages: list[dict[str, Any]] | None,
        owner: str | None,
    ) -> bool: ...


class Holder(Protocol):
    """The run that holds the deploy: its owner (the fencing token every write carries), why
    it lost the deploy ("" while it holds it), and a wait until a heartbeat confirms it still
    holds it once its last confirmed lease may have run out."""

    @property
    def owner(self) -> str | None: ...

    @property
    def lost(self) -> str: ...

    async def ensure_owner(self) -> None: ...


class DeployStore(Protocol):
    # --- what the records say (reads) -------------------------------------------------------
    async def complete_releases(self) -> dict[str, set[str]]:
        """Per host: the releases Ferryman completed there and has not removed."""
        ...

    async def good_releases(self) -> dict[str, set[str]]:
        """Per host: the releases a *successful* deploy completed there, not removed since."""
        ...

    async def release_order(self) -> dict[str, int]:
        """Every release name the environment's records know (any host, any state), with
        its rank: higher is newer. What tells Ferryman's releases and their age apart when
        a ``release_name`` template does not sort by time."""
        ...

    async def live_releases(self) -> dict[str, str]:
        """Per host: the release the records say it serves."""
        ...

    async def bad_releases(self) -> set[str]:
        """Releases whose rollout was aborted: never rolled back to unless forced."""
        ...

    async def hosts_before(self, releases_dir: str) -> dict[str, str]:
        """What each host served before this deploy: a release name, a foreign link, or ""
        (for the recovery of a deploy whose worker died)."""
        ...

    async def take_rollout_request(self) -> str:
        """What someone asked of the running rollout (continue, abort, rollback), once."""
        ...

    # --- what the deploy records (writes, fenced by its owner) ------------------------------
    async def set_resolved(self, commit: str, release_name: str) -> None: ...

    async def record_releases(
        self, commit: str, name: str, hosts: Sequence[str], state: str
    ) -> None:
        """Release ``name`` is ``state`` (complete, failed, removed) on ``hosts``."""
        ...

    async def mark_removed(self, removed: dict[str, list[str]]) -> None:
        """The release dirs deleted from each host."""
        ...

    async def set_live(self, live: dict[str, str | None]) -> None:
        """The release each host now serves (None: its webroot link was removed)."""
        ...

    async def save_rollout(self, state: Rollout) -> None: ...

    async def mark_bad(self, release: str) -> None: ...

    async def set_options(self, values: dict[str, Any]) -> None: ...

    async def record_analysis(self, measurements: Sequence[Measurement]) -> None:
        """One interval of a canary analysis: each metric's values and verdict."""
        ...

    async def record_migrations(self, release: str, listing: Listing | None, error: str) -> None:
        """What the ``migrations:`` command listed once ``release`` was live (or ``error``)."""
        ...

    # --- pull mode: the hosts' tasks ----------------------------------------------------------
    async def create_host_tasks(
        self,
        hosts: Sequence[str],
        action: str,
        release: str,
        previous: dict[str, str] | None = None,
    ) -> None:
        """A task per host (pending): ``deploy`` ``release``, or ``rollback`` to ``previous``."""
        ...

    async def add_host_rows(self) -> None:
        """Every host with a task appears in the deploy's hosts from the start."""
        ...

    async def make_due(self, hosts: Sequence[str], action: str = "deploy") -> None: ...

    async def host_tasks(self, action: str = "deploy") -> dict[str, HostTask]: ...

    async def mark_unreachable(self, fetch_within: float, run_within: float) -> list[str]:
        """Hosts that did not fetch their task in time, or never reported after fetching."""
        ...

    async def cancel_host_tasks(self) -> None:
        """Stop handing the deploy out: open and running deploy tasks are cancelled."""
        ...

    async def environment_deploys(self) -> list[int]:
        """The ids of this environment's deploys, newest first."""
        ...
