"""What a running deploy tells the database: log lines, command records and stage progress.

Everything is buffered and written in batches (one transaction per flush, a few per second), never
one commit per line. The console, the API and the tests all read these same records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from ferryman.db.models import utcnow
from ferryman.db.session import Database
from ferryman.domain.masking import Masker
from ferryman.services import deploy_records
from ferryman.services.deploy_records import LogRecord, StepRecord

FLUSH_SECONDS = 0.3
log = logging.getLogger(__name__)


class Recorder:
    def __init__(self, db: Database, deploy_id: int, secrets: Iterable[str] = ()) -> None:
        self.db = db
        self.deploy_id = deploy_id
        self.mask = Masker(secrets)  # secret values never reach the database
        self._lines: list[LogRecord] = []
        self._steps: list[StepRecord] = []
        self._hosts: dict[str, dict[str, str]] = {}
        self.stages: list[dict[str, Any]] = []
        self._stages_dirty = False
        self._starts: dict[str, float] = {}
        self._flush_lock = asyncio.Lock()

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

    # --- stages ----------------------------------------------------------------------------

    def stage_start(self, name: str, total: int) -> None:
        self._starts[name] = time.monotonic()
        self.stages.append(
            {
                "name": name,
                "status": "running",
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
            self.stage_end(name, "failed")
            raise
        self.stage_end(name, "success")

    def _stage(self, name: str) -> dict[str, Any]:
        for stage in reversed(self.stages):
            if stage["name"] == name:
                found: dict[str, Any] = stage
                return found
        raise KeyError(name)

    def stage_host(self, name: str, host: str, ok: bool, seconds: float) -> None:
        stage = self._stage(name)
        stage["done" if ok else "failed"] += 1
        stage["hosts"][host] = {"ok": ok, "duration": round(seconds, 3)}
        self._stages_dirty = True

    def stage_end(self, name: str, status: str) -> None:
        stage = self._stage(name)
        stage["status"] = status
        stage["duration"] = round(time.monotonic() - self._starts[name], 3)
        self._stages_dirty = True
        self.log(f"{name}: {status} in {stage['duration']:.2f}s", stage=name)

    # --- writing ---------------------------------------------------------------------------

    async def flush(self) -> None:
        async with self._flush_lock:
            lines, self._lines = self._lines, []
            steps, self._steps = self._steps, []
            hosts, self._hosts = self._hosts, {}
            stages = (
                [dict(s, hosts=dict(s["hosts"])) for s in self.stages]
                if self._stages_dirty
                else None
            )
            self._stages_dirty = False
            if not (lines or steps or hosts or stages is not None):
                return
            write = asyncio.ensure_future(
                asyncio.to_thread(
                    deploy_records.write_batch,
                    self.db,
                    self.deploy_id,
                    lines,
                    steps,
                    hosts,
                    stages,
                )
            )
            try:
                await asyncio.shield(write)
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
            except Exception:
                log.exception("writing the records of deploy %s failed; retrying", self.deploy_id)
