"""Logging for ``ferryman serve`` and ``ferryman worker``: every line with a UTC timestamp,
as text or as one JSON object a line (``FERRYMAN_LOG_FORMAT=json``), the same for Ferryman's
own loggers and uvicorn's (server and access log).

Deploy lifecycle events go to the ``ferryman.deploys`` logger with ``deploy_id`` and
``event`` (``claimed``, ``finished``, ``cancelled``, ``taken_over``, ``recovered`` …) as
fields: in JSON they are keys of the object, in text they are in the message."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from ferryman.domain.statuses import DeployStatus, StageStatus

FORMATS = ("text", "json")
LEVELS = ("critical", "error", "warning", "info", "debug")
DEPLOYS = "ferryman.deploys"
# attributes every LogRecord has: anything else was passed as ``extra`` and is a field
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's message with terminal colours
}


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """``2026-11-30T09:12:01.123Z INFO ferryman.deploys: deploy 12 claimed …``"""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``ts``, ``level``, ``logger``, ``message``, the ``extra``
    fields (``deploy_id``, ``event`` …) and ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in data:
                data[key] = value if isinstance(value, int | float | str | bool) else str(value)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def config(level: str = "info", fmt: str = "text") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for Ferryman and uvicorn (uvicorn's ``log_config``)."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be {' or '.join(FORMATS)}, not {fmt!r}")
    formatter = JsonFormatter if fmt == "json" else TextFormatter
    name = level.upper()
    handler = {"class": "logging.StreamHandler", "formatter": "line", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"line": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {"stderr": handler},
        "loggers": {
            "ferryman": {"handlers": ["stderr"], "level": name, "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": name, "propagate": False},
            "uvicorn.error": {"level": name},
            "uvicorn.access": {"handlers": ["stderr"], "level": name, "propagate": False},
        },
        "root": {"handlers": ["stderr"], "level": "WARNING"},
    }


def setup(level: str = "info", fmt: str = "text") -> dict[str, Any]:
    """Configure logging now (the worker command); returns the config for uvicorn too."""
    import logging.config

    cfg = config(level, fmt)
    logging.config.dictConfig(cfg)
    return cfg


def deploy_event(event: str, deploy_id: int, message: str, **fields: Any) -> None:
    """One lifecycle event of a deploy, on the ``ferryman.deploys`` logger."""
    failed = (DeployStatus.FAILED, StageStatus.FAILED)  # a deploy's end, a stage's
    bad = event in ("taken_over", "lost") or fields.get("status") in failed
    level = logging.WARNING if bad else logging.INFO
    logging.getLogger(DEPLOYS).log(
        level, message, extra={"event": event, "deploy_id": deploy_id, **fields}
    )
