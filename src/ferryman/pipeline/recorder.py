"""What a running deploy tells the database: log lines, command records and stage progress.

Everything is buffered and written in batches (one transaction per flush, a few per second), never
one commit per line. The console, the API and the tests all read these same records.

A stage that streams a package to hosts (transfer) also keeps each host's bytes sent and total in
its record, ``bytes: {host: {"sent": n, "total": n}}``: taken from the executor at most every
``PROGRESS_SECONDS`` per host (the first and the last always), and written with the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from ferryman.clock import utcnow
from ferryman.domain.masking import Masker
from ferryman.domain.records import LogRecord, StepRecord
from ferryman.domain.statuses import HostStatus, StageStatus
from ferryman.errors import DatabaseUnavailable
from ferryman.observability.logs import deploy_event
from ferryman.pipeline.ports import RecordWriter
from ferryman.remote.executor import ProgressCallback

FLUSH_SECONDS = 0.3
PROGRESS_SECONDS = 0.25  # a host's transfer progress is taken at most this often
OUTAGE_SECONDS = 1.0  # between tries while the database is out
log = logging.getLogger(__name__)


class Recorder:
    def __init__(self, writer: RecordWriter, deploy_id: int, secrets: Iterable[str] = ()) -> None:
        self.writer = writer
        self.deploy_id = deploy_id
        self.mask = Masker(secrets)  # secret values never reach the database
        self._lines: list[LogRecord] = []
        self._steps: list[StepRecord] = []
        self._hosts: dict[str, dict[str, str]] = {}
        self.stages: list[dict[str, Any]] = []
        self._stages_dirty = False
        self._starts: dict[str, float] = {}
        self._flush_lock = asyncio.Lock()
        # the worker whose run this is: batches are written only while it holds the deploy
        self.owner: str | None = None
        self.on_lost: Callable[[], None] | None = None  # told once a batch was refused
        self.refused = False
        self.host_status: dict[str, str] = {}  # the last status given to each host

    # --- facts -----------------------------------------------------------------------------

    def log(self, text: str, *, host: str = "", stage: str = "", stream: str = "") -> None:
        self._lines.append(
            LogRecord(host=host, stage=stage, text=self.mask(text), ts=utcnow(), stream=stream)
        )

    def step(
        self,
        *,
        host: str,
        stage: str,
        command: str,
        exit_status: int | None,
        output: str,
        started: float,
        wall_start: Any,
    ) -> None:
        self._steps.append(
            StepRecord(
                host=host,
                stage=stage,
                command=self.mask(command)[:20000],
                exit_status=exit_status,
                output=self.mask(output),
                started_at=wall_start,
                duration=round(time.monotonic() - started, 3),
            )
        )

    def host(self, host: str, **values: str) -> None:
        """Per-host status and error: masked like everything else stored (a failing hook's
        stderr in an error often holds a secret it printed)."""
        self._hosts.setdefault(host, {}).update({k: self.mask(v) for k, v in values.items()})
        if "status" in values:
            self.host_status[host] = values["status"]

    def settle_hosts(self, hosts: Iterable[str], status: str) -> None:
        """At the end of a run: every host still ``running`` (or never reached) gets a final
        status — no host row of an ended deploy says it is still running."""
        for host in hosts:
            if self.host_status.get(host, HostStatus.RUNNING) == HostStatus.RUNNING:
                self.host(host, status=status)

    # --- stages ----------------------------------------------------------------------------

    def stage_start(self, name: str, total: int) -> None:
        self._starts[name] = time.monotonic()
        self.stages.append(
            {
                "name": name,
                "status": StageStatus.RUNNING,
                "total": total,
                "done": 0,
                "failed": 0,
                "started_at": utcnow().isoformat(),
                "duration": None,
                "hosts": {},
            }
        )
        self._stages_dirty = True
        self.log(f"── {name} ──", stage=name)

    @contextmanager
    def stage(self, name: str, total: int) -> Iterator[None]:
        """Record a stage's start, end, duration and outcome around a block."""
        self.stage_start(name, total)
        try:
            yield
        except BaseException:
            self.stage_end(name, StageStatus.FAILED)
            raise
        self.stage_end(name, StageStatus.SUCCESS)

    def _stage(self, name: str) -> dict[str, Any]:
        for stage in reversed(self.stages):
            if stage["name"] == name:
                found: dict[str, Any] = stage
                return found
        raise KeyError(name)

    def stage_host(self, name: str, host: str, ok: bool, seconds: float) -> None:
        stage = self._stage(name)
        before = stage["hosts"].get(host)
        if before is not None:  # a host counts once per stage: its last outcome
            stage["done" if before["ok"] else "failed"] -= 1
        stage["done" if ok else "failed"] += 1
        stage["hosts"][host] = {"ok": ok, "duration": round(seconds, 3)}
        self._stages_dirty = True

    def transfer_progress(self, name: str, host: str) -> ProgressCallback:
        """The executor's progress callback for one upload to ``host`` in stage ``name``:
        the bytes sent and in all, kept in the stage's ``bytes`` at most every
        ``PROGRESS_SECONDS`` (the start and the end always), never a write per chunk."""
        last = -PROGRESS_SECONDS

        def progress(sent: int, total: int) -> None:
            nonlocal last
            now = time.monotonic()
            if 0 < sent < total and now - last < PROGRESS_SECONDS:
                return
            last = now
            try:
                stage = self._stage(name)
            except KeyError:
                return  # run outside a recorded stage: nothing to show it in
            # a new dict each time, never changed in place: a flush copies the mapping only
            stage.setdefault("bytes", {})[host] = {"sent": sent, "total": total}
            self._stages_dirty = True

        return progress

    def stage_end(self, name: str, status: str) -> None:
        stage = self._stage(name)
        stage["status"] = status
        stage["duration"] = round(time.monotonic() - self._starts[name], 3)
        self._stages_dirty = True
        self.log(f"{name}: {status} in {stage['duration']:.2f}s", stage=name)
        deploy_event(
            "stage_finished",
            self.deploy_id,
            f"deploy {self.deploy_id} stage {name} {status} in {stage['duration']:.2f}s",
            stage=name,
            status=status,
            duration=stage["duration"],
        )

    # --- writing ---------------------------------------------------------------------------

    async def flush(self) -> None:
        async with self._flush_lock:
            lines, self._lines = self._lines, []
            steps, self._steps = self._steps, []
            hosts, self._hosts = self._hosts, {}
            stages = [_snapshot(s) for s in self.stages] if self._stages_dirty else None
            self._stages_dirty = False
            if not (lines or steps or hosts or stages is not None):
                return
            if self.refused:
                return  # no longer ours: the new owner's record is left alone
            write = asyncio.ensure_future(
                asyncio.to_thread(
                    self.writer.write_batch,
                    self.deploy_id,
                    lines,
                    steps,
                    hosts,
                    stages,
                    self.owner,
                )
            )
            try:
                written = await asyncio.shield(write)
            except asyncio.CancelledError:
                # the thread cannot be stopped: let it finish; keep the batch only if it failed
                with contextlib.suppress(Exception):
                    await write
                if write.exception() is not None:
                    self._keep(lines, steps, hosts, stages)
                raise
            except Exception:
                self._keep(lines, steps, hosts, stages)  # the database may be back next time
                raise
            if not written:
                self.refused = True
                if self.on_lost is not None:
                    self.on_lost()

    def _keep(
        self,
        lines: list[LogRecord],
        steps: list[StepRecord],
        hosts: dict[str, dict[str, str]],
        stages: list[dict[str, Any]] | None,
    ) -> None:
        """Put a batch that was not written back in front of what came since."""
        self._lines[:0], self._steps[:0] = lines, steps
        for host, values in hosts.items():
            self._hosts[host] = {**values, **self._hosts.get(host, {})}
        self._stages_dirty = self._stages_dirty or stages is not None

    async def run_flusher(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                await self.flush()
            except DatabaseUnavailable:
                log.warning("deploy %s: the database is out; its records wait", self.deploy_id)
                await asyncio.sleep(OUTAGE_SECONDS)
            except Exception:
                log.exception("writing the records of deploy %s failed", self.deploy_id)

    async def flush_all(self) -> None:
        """The last flush of a run: waits for the database through an outage (a record
        with lines missing would not tell what happened)."""
        while True:
            try:
                await self.flush()
                return
            except DatabaseUnavailable:
                await asyncio.sleep(OUTAGE_SECONDS)


def _snapshot(stage: dict[str, Any]) -> dict[str, Any]:
    """A stage's record as it is now, for a batch written from another thread."""
    copy = dict(stage, hosts=dict(stage["hosts"]))
    if "bytes" in stage:
        copy["bytes"] = dict(stage["bytes"])
    return copy
