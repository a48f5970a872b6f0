"""How long an ended deploy's log is kept: ``180d``, ``26w``, ``72h`` or ``off``.

One syntax for the server's ``FERRYMAN_LOG_RETENTION`` and an environment's ``log_retention:``
key in a project's YAML (the environment's wins for its deploys). Pure."""

from __future__ import annotations

from datetime import timedelta

UNITS = {"d": 1.0, "w": 7.0, "h": 1 / 24}
HELP = "must be off or a number of days of at least 1 (180d, 26w, 72h)"
OFF = ("off", "0", "none", "never")


def parse_retention(text: str) -> timedelta | None:
    """``180d``, ``26w``, ``72h`` → that long; ``off`` (or ``0``) → None: kept for ever.
    At least a day, at most 100 years; anything else raises ``ValueError`` saying so."""
    value = text.strip().lower()
    if value in OFF:
        return None
    unit = value[-1:]
    if unit not in UNITS or not value[:-1].isascii() or not value[:-1].isdigit():
        raise ValueError(HELP)
    days = int(value[:-1]) * UNITS[unit]
    if not 1 <= days <= 36_500:
        raise ValueError(HELP)
    return timedelta(days=days)
