"""The engine's ports in memory: a deploy's records as plain dicts, for tests of the stages
and for trying the engine without a database. Same contract as the database store (see
``pipeline.ports``), minus durability: nothing is fenced, nothing survives the process."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ferryman.commands.migrations import Listing
from ferryman.domain.analysis import Measurement
from ferryman.domain.pull import ACTIVE, HostTask
from ferryman.domain.records import LogRecord, StepRecord
from ferryman.domain.rollout import Rollout
from ferryman.domain.statuses import PullTaskStatus, ReleaseState


@dataclass
class MemoryTask:
    host: str
    action: str
    release: str
    previous: str = ""
    status: str = PullTaskStatus.PENDING
    went_ahead: bool = False  # the host's first report was taken


@dataclass
class MemoryStore:
    """One deploy's records. ``releases`` is {host: {name: state}} (complete, failed,
    removed), ``good`` the names successful deploys completed, ``live`` {host: name}."""

    releases: dict[str, dict[str, str]] = field(default_factory=dict)
    order: dict[str, int] = field(default_factory=dict)  # name -> rank, in recording order
    good: set[str] = field(default_factory=set)
    live: dict[str, str] = field(default_factory=dict)
    bad: set[str] = field(default_factory=set)
    before: dict[str, str] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    resolved: tuple[str, str] = ("", "")
    rollout: Rollout | None = None
    options: dict[str, Any] = field(default_factory=dict)
    tasks: list[MemoryTask] = field(default_factory=list)
    deploys: list[int] = field(default_factory=list)
    unreachable: set[str] = field(default_factory=set)  # hosts the next deadline check finds
    analysis: list[Measurement] = field(default_factory=list)  # canary analysis intervals
    # what migrations: listed: (release, listing or None, error)
    migrations: list[tuple[str, Listing | None, str]] = field(default_factory=list)

    # --- reads ---------------------------------------------------------------------------
    def _with(self, states: set[str], names: set[str] | None = None) -> dict[str, set[str]]:
        return {
            host: {
                n for n, state in found.items() if state in states and (names is None or n in names)
            }
            for host, found in self.releases.items()
        }

    async def complete_releases(self) -> dict[str, set[str]]:
        return self._with({ReleaseState.COMPLETE})

    async def good_releases(self) -> dict[str, set[str]]:
        return self._with({ReleaseState.COMPLETE}, self.good)

    async def release_order(self) -> dict[str, int]:
        return dict(self.order)

    async def live_releases(self) -> dict[str, str]:
        return dict(self.live)

    async def bad_releases(self) -> set[str]:
        return set(self.bad)

    async def hosts_before(self, releases_dir: str) -> dict[str, str]:
        return dict(self.before)

    async def take_rollout_request(self) -> str:
        return self.requests.pop(0) if self.requests else ""

    # --- writes --------------------------------------------------------------------------
    async def set_resolved(self, commit: str, release_name: str) -> None:
        self.resolved = (commit, release_name)

    async def record_releases(
        self, commit: str, name: str, hosts: Sequence[str], state: str
    ) -> None:
        for host in hosts:
            self.releases.setdefault(host, {})[name] = state
        self.order.setdefault(name, len(self.order) + 1)

    async def mark_removed(self, removed: dict[str, list[str]]) -> None:
        for host, names in removed.items():
            for name in names:
                if name in self.releases.get(host, {}):
                    self.releases[host][name] = ReleaseState.REMOVED

    async def set_live(self, live: dict[str, str | None]) -> None:
        for host, name in live.items():
            if name is None:
                self.live.pop(host, None)
            else:
                self.live[host] = name

    async def save_rollout(self, state: Rollout) -> None:
        self.rollout = Rollout.from_dict(state.to_dict())

    async def mark_bad(self, release: str) -> None:
        self.bad.add(release)

    async def set_options(self, values: dict[str, Any]) -> None:
        self.options.update(values)

    async def record_analysis(self, measurements: Sequence[Measurement]) -> None:
        self.analysis.extend(measurements)

    async def record_migrations(self, release: str, listing: Listing | None, error: str) -> None:
        self.migrations.append((release, listing, error))

    # --- pull mode -----------------------------------------------------------------------
    async def create_host_tasks(
        self,
        hosts: Sequence[str],
        action: str,
        release: str,
        previous: dict[str, str] | None = None,
    ) -> None:
        for host in hosts:
            self.tasks.append(
                MemoryTask(
                    host=host,
                    action=action,
                    release=release if action == "deploy" else (previous or {}).get(host, ""),
                    previous=(previous or {}).get(host, "") if action == "deploy" else "",
                )
            )

    async def add_host_rows(self) -> None:
        return None

    async def make_due(self, hosts: Sequence[str], action: str = "deploy") -> None:
        for task in self.tasks:
            if (
                task.host in hosts
                and task.action == action
                and task.status == PullTaskStatus.PENDING
            ):
                task.status = PullTaskStatus.DUE

    async def host_tasks(self, action: str = "deploy") -> dict[str, HostTask]:
        return {
            t.host: HostTask(t.status, t.previous, t.went_ahead)
            for t in self.tasks
            if t.action == action
        }

    async def mark_unreachable(self, fetch_within: float, run_within: float) -> list[str]:
        late = []
        for task in self.tasks:
            if task.host in self.unreachable and task.status in ACTIVE:
                if task.action == "deploy":  # an overdue rollback stays handed out
                    task.status = PullTaskStatus.UNREACHABLE
                late.append(task.host)
        return late

    async def cancel_host_tasks(self) -> None:
        for task in self.tasks:
            if task.status in (PullTaskStatus.PENDING, PullTaskStatus.DUE) or (
                task.action == "deploy" and task.status == PullTaskStatus.RUNNING
            ):
                task.status = PullTaskStatus.CANCELLED

    async def environment_deploys(self) -> list[int]:
        return sorted(self.deploys, reverse=True)

    # --- what a host does with its task (for tests that play the hosts) ------------------
    def report(self, host: str, action: str, status: str, previous: str = "") -> None:
        """The host ran its due task of ``action`` and says ``status`` (previous: what it
        served before, known with its go-ahead)."""
        task = next(t for t in reversed(self.tasks) if t.host == host and t.action == action)
        if task.status not in ACTIVE:
            raise ValueError(f"{host}'s {action} task is {task.status}")
        task.status, task.previous = status, previous or task.previous
        task.went_ahead = True
        if status == PullTaskStatus.SUCCESS and task.release:
            self.live[host] = task.release
        elif status == PullTaskStatus.SUCCESS:  # rolled back to no release: the link is gone
            self.live.pop(host, None)


@dataclass
class MemoryWriter:
    """The recorder's batches, kept: every line, command and host row it wrote."""

    lines: list[LogRecord] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)
    hosts: dict[str, dict[str, str]] = field(default_factory=dict)
    stages: list[dict[str, Any]] = field(default_factory=list)

    def write_batch(
        self,
        deploy_id: int,
        lines: Sequence[LogRecord],
        steps: Sequence[StepRecord],
        hosts: dict[str, dict[str, str]],
        stages: list[dict[str, Any]] | None,
        owner: str | None,
    ) -> bool:
        self.lines += lines
        self.steps += steps
        for host, values in hosts.items():
            self.hosts.setdefault(host, {}).update(values)
        if stages is not None:
            self.stages = stages
        return True
