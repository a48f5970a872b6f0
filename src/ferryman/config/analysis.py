"""The ``analysis:`` block of a gray release's ``strategy``: compare the canary with the hosts
still on the old release on Prometheus queries before the rollout goes on.

```yaml
analysis:
  prometheus: http://prometheus.internal:9090
  interval: 30s          # one measurement at the end of each interval
  duration: 5m           # how long the canary is watched
  metrics:
    - name: error-rate
      query: sum(rate(http_requests_total{instance=~"{HOSTS_RE}",code=~"5.."}[1m]))
      compare: canary <= baseline * 1.5 + 0.001
  failure_limit: 2       # a metric failing in more intervals than this fails the canary
```

The rules of queries and ``compare`` are ``domain/analysis.py``'s; the Prometheus address is
checked against the outbound policy when the project is applied and at every query.
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from ferryman.domain import analysis as rules
from ferryman.domain import rollout, validate
from ferryman.errors import ValidationError
from ferryman.said import said

MAX_URL = 500
MAX_METRICS = 20
MAX_INTERVALS = 1000  # measurements of one analysis: rows kept, lines logged


def _refused(kind: str, message: str) -> PydanticCustomError:
    """A validator's refusal, as ``config/project.py``'s: the message rides whole in the
    error's context (a ``said`` one keeps its template and values; braces stay text)."""
    return PydanticCustomError(kind, "{said}", {"said": message})


def _checked(fn: Any, kind: str) -> Any:
    def check(value: Any) -> Any:
        if not isinstance(value, str):
            raise _refused(kind, said("expected a string, got %(value)s", value=repr(value)[:40]))
        try:
            fn(value)
        except ValidationError as exc:
            raise _refused(kind, exc.message) from None
        return value

    return check


def _seconds(low: float, high: float) -> Any:
    def check(value: Any) -> float:
        try:
            seconds = rollout.duration(value)
        except ValidationError as exc:
            raise _refused("duration", exc.message) from None
        if not low <= seconds <= high:
            limits = {"low": said("%(n)ss", n=f"{low:g}"), "high": said("%(n)ss", n=f"{high:g}")}
            raise _refused("duration", said("between %(low)s and %(high)s", **limits))
        return seconds

    return check


def prometheus_url(value: str) -> str:
    """An http(s) URL of a Prometheus server, without credentials, query or fragment."""
    if len(value) > MAX_URL:
        raise ValidationError(said("prometheus: longer than %(most)s characters", most=MAX_URL))
    if any(ord(c) < 33 or c == "\x7f" for c in value):
        raise ValidationError(said("prometheus: spaces or control characters"))
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, TypeError):
        raise ValidationError(
            said("prometheus: not a URL: %(value)s", value=repr(value[:80]))
        ) from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValidationError(
            said("prometheus: an http:// or https:// URL, not %(value)s", value=repr(value[:80]))
        )
    if url.userinfo:
        raise ValidationError(said("prometheus: no user or password in the URL (it is shown)"))
    if url.query or url.fragment:
        raise ValidationError(said("prometheus: no ?query or #fragment (the API path is added)"))
    return value


Seconds = Annotated[
    float,
    PlainValidator(_seconds(1, 3600)),
    WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string"}], "description": "30s"}),
]
Span = Annotated[
    float,
    PlainValidator(_seconds(1, 86400)),
    WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string"}], "description": "5m"}),
]


class Metric(BaseModel):
    """One query, asked of the canary's hosts and of the baseline's, and how they compare."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[
        str,
        PlainValidator(_checked(validate.name, "name")),
        WithJsonSchema({"type": "string", "description": "a name: letters, digits, . _ -"}),
    ]
    query: Annotated[
        str,
        PlainValidator(_checked(rules.check_query, "query")),
        WithJsonSchema({"type": "string", "maxLength": rules.MAX_QUERY}),
    ]
    compare: Annotated[
        str,
        PlainValidator(_checked(rules.parse_compare, "compare")),
        WithJsonSchema(
            {
                "type": "string",
                "maxLength": rules.MAX_COMPARE,
                "description": "canary <= baseline * 1.2 (canary, baseline, numbers, "
                "+ - * / ( ), one of < <= > >= == !=)",
            }
        ),
    ]

    @property
    def parsed(self) -> rules.Compare:
        return rules.parse_compare(self.compare)


class Analysis(BaseModel):
    """Metric canary analysis: after the canary batch, every ``interval`` for ``duration``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prometheus: Annotated[
        str,
        PlainValidator(_checked(prometheus_url, "url")),
        WithJsonSchema({"type": "string", "format": "uri", "maxLength": MAX_URL}),
    ]
    interval: Seconds = 30.0
    duration: Span = 300.0
    metrics: list[Metric] = Field(min_length=1, max_length=MAX_METRICS)
    failure_limit: int = Field(default=0, ge=0, le=1000)

    @model_validator(mode="after")
    def _consistent(self) -> Analysis:
        if self.duration < self.interval:
            raise _refused("analysis", said("duration: at least one interval"))
        if rules.intervals(self.duration, self.interval) > MAX_INTERVALS:
            raise _refused(
                "analysis",
                said(
                    "duration: at most %(most)s intervals (a longer interval)", most=MAX_INTERVALS
                ),
            )
        names = [m.name for m in self.metrics]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise _refused("analysis", said("metrics: a name given twice: %(names)s", names=twice))
        return self

    @property
    def query_timeout(self) -> float:
        """Each query's whole time (connect, answer): its interval, at least 5 s (a busy
        deploy host or Prometheus is not a failed canary) and at most 10 s."""
        return max(5.0, min(10.0, self.interval))
