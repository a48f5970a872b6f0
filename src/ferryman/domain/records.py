"""What a running deploy records, as values: a console line and a command it ran. The
recorder (``pipeline.recorder``) makes them; ``services.deploy_records`` writes them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class LogRecord:
    host: str
    stage: str
    text: str
    ts: datetime
    stream: str = ""  # stdout | stderr of a command; "" for Ferryman's own lines


@dataclass(frozen=True)
class StepRecord:
    host: str
    stage: str
    command: str
    exit_status: int | None
    output: str
    started_at: datetime
    duration: float
