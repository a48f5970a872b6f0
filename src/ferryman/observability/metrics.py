"""``/metrics`` in Prometheus' text format, computed from the database at scrape time.

The database is the source of truth, so every server of a cluster answers the same numbers
whatever process ran the deploys, and nothing is lost when a process restarts: counters are
counts of rows that only grow (finished deploys, failed notification attempts, take-overs).
Stage durations are read from finished deploys' stage records; each process keeps the
histogram it built and adds only deploys finished since its last scrape. The one in-process
counter is ``ferryman_agent_polls_total``: a pull-mode poll for nothing never touches the
database, so each server counts the polls it answered (sum it over instances).

``/metrics`` needs ``Authorization: Bearer $FERRYMAN_METRICS_TOKEN``: project and environment
names are not for anyone who can reach the server. Without the setting it answers 404."""

from __future__ import annotations

import hmac
import re
import threading
from collections.abc import Iterable, Iterator, MutableMapping
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from sqlalchemy import func, or_, select

from ferryman import __version__
from ferryman.db.models import (
    AgentTask,
    Deploy,
    DeployHost,
    NotifyDelivery,
    Project,
    utcnow,
)
from ferryman.db.session import Database
from ferryman.domain.statuses import (
    DELIVERY_WAITING,
    DEPLOY_ACTIVE,
    DEPLOY_FINISHED,
    PULL_ACTIVE,
    DeliveryStatus,
    DeployStatus,
    HostStatus,
    PullTaskStatus,
)
from ferryman.services import workers

FINAL = DEPLOY_FINISHED
BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
OVERLAP = timedelta(minutes=10)  # finish times may arrive late (clocks, long transactions)
AGENT_POLL = re.compile(r"^/api/v1/agent/[^/]+$")


class StageHistogram:
    """Per-stage duration histograms of finished deploys, built once and then extended by
    the deploys finished since the last scrape (``finished_at`` past a watermark, with an
    overlap so a late commit is not missed, and the ids of the overlap remembered so
    nothing counts twice)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._mark: datetime | None = None
        self._recent: dict[int, datetime] = {}

    def update(self, db: Database) -> None:
        with self._lock, db.read() as s:
            query = select(Deploy.id, Deploy.finished_at, Deploy.stages).where(
                Deploy.status.in_(FINAL), Deploy.finished_at.is_not(None)
            )
            if self._mark is not None:
                query = query.where(Deploy.finished_at >= self._mark - OVERLAP)
            ordered = query.order_by(Deploy.finished_at).execution_options(yield_per=500)
            for deploy_id, finished, stages in s.execute(ordered):  # the first scrape: all
                if deploy_id in self._recent:
                    continue
                self._recent[deploy_id] = finished
                self._mark = finished if self._mark is None else max(self._mark, finished)
                for stage in stages or []:
                    self._add(stage)
            if self._mark is not None:
                edge = self._mark - OVERLAP
                self._recent = {k: v for k, v in self._recent.items() if v >= edge}

    def _add(self, stage: dict[str, Any]) -> None:
        seconds = stage.get("duration")
        name = str(stage.get("name") or "")
        if not name or not isinstance(seconds, int | float):
            return
        buckets = self._buckets.setdefault(name, [0] * len(BUCKETS))
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                buckets[i] += 1
        self._sums[name] = self._sums.get(name, 0.0) + float(seconds)
        self._counts[name] = self._counts.get(name, 0) + 1

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(
            "ferryman_stage_duration_seconds",
            "Duration of each stage of finished deploys.",
            labels=["stage"],
        )
        with self._lock:
            for name in sorted(self._counts):
                pairs = [
                    (str(float(b)), float(c))
                    for b, c in zip(BUCKETS, self._buckets[name], strict=True)
                ]
                pairs.append(("+Inf", float(self._counts[name])))
                family.add_metric([name], pairs, self._sums[name])
        return family


class DatabaseCollector(Collector):
    """Everything but the poll counter, read from ``db`` when Prometheus scrapes."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.stages = StageHistogram()

    def collect(self) -> Iterable[Metric]:
        info = GaugeMetricFamily(
            "ferryman_build_info", "This server's version.", labels=["version"]
        )
        info.add_metric([__version__], 1)
        yield info
        yield from self._deploys()
        self.stages.update(self.db)
        yield self.stages.family()
        yield from self._queue()
        yield from self._workers()
        yield from self._notifications()
        yield from self._agents()
        yield from self._ssh_failures()

    def _deploys(self) -> Iterator[Metric]:
        finished = CounterMetricFamily(
            "ferryman_deploys",
            "Finished deploys and rollbacks by project, environment, kind and outcome.",
            labels=["project", "env", "kind", "status"],
        )
        active = GaugeMetricFamily(
            "ferryman_deploys_active",
            "Deploys queued, running or paused now, by project and environment.",
            labels=["project", "env", "status"],
        )
        running = 0
        with self.db.read() as s:
            rows = s.execute(
                select(Project.name, Deploy.env, Deploy.kind, Deploy.status, func.count())
                .join(Project, Project.id == Deploy.project_id)
                .group_by(Project.name, Deploy.env, Deploy.kind, Deploy.status)
            ).all()
        active_counts: dict[tuple[str, str, str], int] = {}
        for project, env, kind, status, count in rows:
            if status in FINAL:
                finished.add_metric([project, env, kind, status], count)
            elif status in DEPLOY_ACTIVE:
                key = (project, env, status)
                active_counts[key] = active_counts.get(key, 0) + count
                running += count if status == DeployStatus.RUNNING else 0
        for key, count in sorted(active_counts.items()):
            active.add_metric(list(key), count)
        yield finished
        yield active
        yield GaugeMetricFamily("ferryman_deploys_running", "Deploys running now.", value=running)

    def _queue(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "ferryman_queue_depth", "Deploys due and waiting for a worker.", labels=["queue"]
        )
        age = GaugeMetricFamily(
            "ferryman_queue_oldest_age_seconds",
            "How long the oldest due deploy has waited (0 when none waits).",
            labels=["queue"],
        )
        now = utcnow()
        with self.db.read() as s:
            rows = s.execute(
                select(Deploy.queue, func.count(), func.min(Deploy.created_at))
                .where(
                    Deploy.status == DeployStatus.QUEUED,
                    or_(Deploy.not_before.is_(None), Deploy.not_before <= now),
                )
                .group_by(Deploy.queue)
            ).all()
        if not rows:
            depth.add_metric(["default"], 0)
            age.add_metric(["default"], 0)
        for queue, count, oldest in rows:
            depth.add_metric([queue], count)
            age.add_metric([queue], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
        yield depth
        yield age

    def _workers(self) -> Iterator[Metric]:
        alive = workers.alive(self.db)
        yield GaugeMetricFamily(
            "ferryman_workers",
            f"Workers whose heartbeat is at most {workers.RECENT:.0f} s old.",
            value=len(alive),
        )
        yield GaugeMetricFamily(
            "ferryman_worker_slots",
            "Deploys the live workers may run at once.",
            value=sum(int(w["concurrency"]) for w in alive),
        )
        with self.db.read() as s:
            taken = workers.take_overs(s)
        yield CounterMetricFamily(
            "ferryman_lease_takeovers",
            "Deploys taken over from a worker whose lease ran out.",
            value=taken,
        )

    def _notifications(self) -> Iterator[Metric]:
        with self.db.read() as s:
            attempts = s.scalar(select(func.coalesce(func.sum(NotifyDelivery.attempts), 0)))
            sent = s.scalar(
                select(func.count()).where(NotifyDelivery.status == DeliveryStatus.SENT)
            )
            given_up = s.scalar(
                select(func.count()).where(NotifyDelivery.status == DeliveryStatus.FAILED)
            )
            pending = s.scalar(
                select(func.count()).where(NotifyDelivery.status.in_(DELIVERY_WAITING))
            )
        yield CounterMetricFamily(
            "ferryman_notification_attempts_failed",
            "Notification sends that failed (each is retried, six attempts in all).",
            value=int(attempts or 0) - int(sent or 0),
        )
        yield CounterMetricFamily(
            "ferryman_notifications_failed",
            "Notifications given up on after every attempt failed.",
            value=int(given_up or 0),
        )
        yield GaugeMetricFamily(
            "ferryman_notifications_pending", "Notifications waiting to be sent.", value=pending
        )

    def _agents(self) -> Iterator[Metric]:
        with self.db.read() as s:
            unreachable = s.scalar(
                select(func.count()).where(AgentTask.status == PullTaskStatus.UNREACHABLE)
            )
            waiting = s.scalar(select(func.count()).where(AgentTask.status.in_(PULL_ACTIVE)))
        yield CounterMetricFamily(
            "ferryman_agent_hosts_unreachable",
            "Pull-mode tasks whose host did not poll or report back in time.",
            value=int(unreachable or 0),
        )
        yield GaugeMetricFamily(
            "ferryman_agent_tasks_open",
            "Pull-mode tasks due or running on their hosts now.",
            value=int(waiting or 0),
        )

    def _ssh_failures(self) -> Iterator[Metric]:
        failures = CounterMetricFamily(
            "ferryman_ssh_connection_failures",
            "Push-mode hosts a deploy could not connect to over SSH, by reason: unreachable "
            "(refused, timed out, no route), host_key (not the pinned or known key), auth "
            "(the server's key refused).",
            labels=["project", "env", "reason"],
        )
        counts: dict[tuple[str, str, str], int] = {}
        with self.db.read() as s:
            rows = s.execute(
                select(Project.name, Deploy.env, DeployHost.error)
                .join(Deploy, Deploy.id == DeployHost.deploy_id)
                .join(Project, Project.id == Deploy.project_id)
                .where(DeployHost.status == HostStatus.FAILED, or_(*_CONNECT_FILTERS))
            ).all()
        for project, env, error in rows:
            reason = connection_failure(error)
            if reason:
                counts[(project, env, reason)] = counts.get((project, env, reason), 0) + 1
        for key, count in sorted(counts.items()):
            failures.add_metric(list(key), count)
        yield failures


# How the SSH executor words a failed connection (remote/executor.py), by reason; a host's
# recorded error is ``host [stage]: message`` (errors.RemoteError)
CONNECT_FAILURES = (
    ("cannot connect:", "unreachable"),
    ("host key not verified", "host_key"),
    ("the pinned host key is unreadable", "host_key"),
    ("permission denied for", "auth"),
)
_CONNECT_FILTERS = [DeployHost.error.contains(f"]: {phrase}") for phrase, _ in CONNECT_FAILURES]
_RECORDED = re.compile(r"^\S+ \[[a-z_]+\]: (.*)", re.DOTALL)


def connection_failure(error: str) -> str:
    """The reason a host's recorded error says its SSH connection failed ('' for another
    failure: a command that failed — even one whose output says "cannot connect" —, a
    health check)."""
    recorded = _RECORDED.match(error)
    message = recorded.group(1) if recorded else ""
    for phrase, reason in CONNECT_FAILURES:
        if message.startswith(phrase):
            return reason
    return ""


class Metrics:
    """This server's registry: the database collector and the poll counter."""

    def __init__(self, db: Database) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(DatabaseCollector(db))
        self.polls = Counter(
            "ferryman_agent_polls",
            "Pull-mode polls this server process answered, by HTTP status.",
            ["code"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


def authorized(header: str, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time."""
    scheme, _, given = header.partition(" ")
    return (
        bool(token)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(given.strip().encode(), token.encode())
    )


class CountPolls:
    """ASGI middleware: counts pull-mode polls (``GET /api/v1/agent/{host}``) by status."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or scope.get("method") != "GET" or not AGENT_POLL.match(path):
            await self.app(scope, receive, send)
            return

        async def counted(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.metrics.polls.labels(code=str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, counted)


__all__ = ["CONTENT_TYPE_LATEST", "CountPolls", "Metrics", "authorized"]
