"""Gray releases, as pure rules: durations, which hosts go in which batch, how many may fail,
and the rollout state a deploy keeps (so a pause survives any worker).

Batches: the canary (if any) is the first batch. ``batches`` then cuts the other hosts:
a number is hosts per batch, a percentage is that share of *all* hosts per batch, and a list
gives the cumulative share (or count) of all hosts reached after each batch —
``[1, "10%", "50%", "100%"]``. Whatever is left after the list's last step forms a final batch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ferryman.domain.statuses import RolloutState
from ferryman.domain.validate import is_digits
from ferryman.errors import ValidationError
from ferryman.said import said

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def duration(value: str | float | int | None, what: str = "duration") -> float:
    """``"5m"``, ``"30s"``, ``"1.5h"``, ``"250ms"`` or a number of seconds."""
    if value is None or value == "":
        return 0.0
    # the message names ``what`` (a key's path); the default is a word, said in any language
    field = said("duration") if what == "duration" else what
    if isinstance(value, bool):
        raise ValidationError(
            said("%(field)s: not a duration: %(value)s", field=field, value=repr(value))
        )
    if isinstance(value, int | float):
        seconds = float(value)
    elif not isinstance(value, str):  # a list or a mapping from a config file
        raise ValidationError(_not_a_duration(field, value))
    else:
        found = _DURATION.match(value)
        if not found:
            raise ValidationError(_not_a_duration(field, value))
        seconds = float(found.group(1)) * _UNITS[found.group(2)]
    if not math.isfinite(seconds):
        raise ValidationError(
            said(
                "%(field)s: not a duration: %(value)s (a finite number of seconds)",
                field=field,
                value=repr(value),
            )
        )
    if seconds < 0 or seconds > 7 * 86400:
        raise ValidationError(said("%(field)s: between 0 and 7 days", field=field))
    return seconds


def _not_a_duration(field: str, value: Any) -> str:
    return said(
        "%(field)s: not a duration: %(value)s (like 30s, 5m, 1h)", field=field, value=repr(value)
    )


def amount(value: str | int, total: int, what: str) -> int:
    """A count (``3``) or a share of ``total`` (``"25%"``, rounded up, at least 1 when > 0)."""
    if isinstance(value, bool):
        raise ValidationError(_not_an_amount(what, value))
    if isinstance(value, int):
        if value < 0:
            raise ValidationError(said("%(field)s: not negative", field=what))
        return value
    text = str(value).strip()
    if text.endswith("%"):
        try:
            share = float(text[:-1])
        except ValueError:
            raise ValidationError(
                said("%(field)s: not a percentage: %(value)s", field=what, value=repr(value))
            ) from None
        if not 0 <= share <= 100:
            raise ValidationError(said("%(field)s: a percentage between 0%% and 100%%", field=what))
        return math.ceil(total * share / 100) if share else 0
    if is_digits(text):
        return int(text)
    raise ValidationError(_not_an_amount(what, value))


def _not_an_amount(field: str, value: Any) -> str:
    return said(
        "%(field)s: a number or a percentage, not %(value)s", field=field, value=repr(value)
    )


def canary_hosts(
    spec: Sequence[str] | str | int | None,
    hosts: Sequence[str],
    names: Mapping[str, Sequence[str]],
    labels: Mapping[str, Sequence[str]],
) -> list[str]:
    """The canary hosts (host keys, in the order of ``hosts``). ``spec`` is a list of hosts
    (key, address or server name), ``label:NAME``, a count or a percentage."""
    if spec is None or spec == [] or spec == "":
        return []
    if isinstance(spec, str) and spec.startswith("label:"):
        label = spec[len("label:") :]
        chosen = [h for h in hosts if label in labels.get(h, ())]
        if not chosen:
            raise ValidationError(
                said("strategy/canary: no host has the label %(label)s", label=repr(label))
            )
        return chosen
    if isinstance(spec, int | str):
        count = amount(spec, len(hosts), "strategy/canary")
        return list(hosts[: min(count, len(hosts))])
    if isinstance(spec, list | tuple):
        wanted = set(spec)
        chosen = [
            h
            for h in hosts
            if h in wanted or h.split(":")[0] in wanted or wanted & set(names.get(h, ()))
        ]
        unknown = [
            s for s in spec if not any(s in (h, h.split(":")[0], *names.get(h, ())) for h in hosts)
        ]
        if unknown:
            raise ValidationError(
                said(
                    "strategy/canary: not hosts of this environment: %(hosts)s",
                    hosts=repr(unknown),
                )
            )
        return chosen
    raise ValidationError(said("strategy/canary: not a canary: %(value)s", value=repr(spec)))


def plan(
    hosts: Sequence[str],
    canary: Sequence[str],
    batches: str | int | Sequence[str | int],
) -> list[list[str]]:
    """The batches, in order (the canary first); every host exactly once."""
    total = len(hosts)
    rest = [h for h in hosts if h not in canary]
    out: list[list[str]] = [list(canary)] if canary else []
    if not isinstance(batches, int | str):
        reached = len(canary)
        for step in batches:
            target = min(amount(step, total, "strategy/batches"), total)
            size = target - reached
            if size <= 0:
                continue
            out.append(rest[:size])
            rest = rest[size:]
            reached = target
        if rest:
            out.append(rest)
    else:
        size = max(amount(batches, total, "strategy/batches"), 1)
        while rest:
            out.append(rest[:size])
            rest = rest[size:]
    return [b for b in out if b]


@dataclass
class Rollout:
    """What a gray release has done so far; stored on the deploy (``deploys.rollout``)."""

    batches: list[list[str]]
    next_batch: int = 0
    previous: dict[str, str | None] = field(default_factory=dict)  # host -> link before
    switched: list[str] = field(default_factory=list)  # on the new release now
    healthy: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # host -> what failed
    state: str = RolloutState.RUNNING  # statuses.RolloutState: running | paused | done | …
    paused_since: str | None = None
    pause_reason: str = ""
    request: str = ""  # set by people while paused or running: continue | abort | rollback
    # healthy canary hosts kept out of the load balancer until the rollout is continued
    # (``strategy.canary_lb: out_until_continue``); lb_in puts them back
    out_of_lb: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rollout:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})
