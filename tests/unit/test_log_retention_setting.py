"""FERRYMAN_LOG_RETENTION: ``180d``, ``26w`` or ``72h`` (at least a day), or ``off`` — the
default, which keeps every log; anything else stops the server naming the variable."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ferryman.config.settings import load_settings
from ferryman.errors import ConfigError


def _retention(value: str | None) -> timedelta | None:
    env = {"FERRYMAN_HOME": "/srv/ferryman-home"}
    if value is not None:
        env["FERRYMAN_LOG_RETENTION"] = value
    return load_settings(env).log_retention


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        (None, None),
        ("", None),
        ("off", None),
        ("0", None),
        ("180d", timedelta(days=180)),
        (" 26W ", timedelta(days=182)),
        ("72h", timedelta(days=3)),
        ("1d", timedelta(days=1)),
    ],
)
def test_the_retention_takes_days_weeks_or_hours_and_is_off_by_default(value, kept):
    assert _retention(value) == kept


@pytest.mark.parametrize("value", ["12h", "180", "-3d", "1.5d", "1e3d", "٣d", "180 days", "36501d"])
def test_a_retention_under_a_day_or_not_a_duration_is_refused_naming_the_variable(value):
    with pytest.raises(ConfigError, match=r"FERRYMAN_LOG_RETENTION=.*at least 1"):
        _retention(value)
