"""``verify_served``: after its switch, each host must prove it serves the new release.

```yaml
verify_served:
  http: "http://{HOST}/version"   # fetched from the deploy host; {HOST} is the host's address
  expect: "{COMMIT}"              # the text the answer must contain (the default)
  header: X-Release               # optional: look in this response header, not the body
  attempts: 10                    # tries before the host counts as failed (1-60)
  interval: 1s                    # between tries (0-60s)
  timeout: 5s                     # per try (more than 0, at most 30s)
```

The URL's host must be ``{HOST}``: the check only ever reaches the host being checked.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from ferryman.domain import rollout
from ferryman.domain.variables import NAMES
from ferryman.errors import ValidationError
from ferryman.said import said

_HEADER = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")  # an HTTP token
_BRACED = re.compile(r"\{([A-Z_]+)\}")
MAX_EXPECT = 256


def _refused(kind: str, message: str) -> PydanticCustomError:
    """A validator's refusal, as ``config/project.py``'s: the message rides whole in the
    error's context (a ``said`` one keeps its template and values; braces stay text)."""
    return PydanticCustomError(kind, "{said}", {"said": message})


def seconds_between(low: float, high: float, zero_ok: bool) -> Any:
    def check(value: Any) -> float:
        try:
            seconds = rollout.duration(value)
        except ValidationError as exc:
            raise _refused("duration", exc.message) from None
        if (seconds < low if zero_ok else seconds <= low) or seconds > high:
            limits = {"low": said("%(n)ss", n=f"{low:g}"), "high": said("%(n)ss", n=f"{high:g}")}
            raise _refused(
                "duration",
                said("at least %(low)s, at most %(high)s", **limits)
                if zero_ok
                else said("more than %(low)s, at most %(high)s", **limits),
            )
        return seconds

    return check


def seconds_schema(low: float, high: float) -> dict[str, Any]:
    return {
        "anyOf": [{"type": "number", "minimum": low, "maximum": high}, {"type": "string"}],
        "description": f"1s, 500ms or seconds (at most {high:g}s)",
    }


Interval = Annotated[
    float, PlainValidator(seconds_between(0, 60, True)), WithJsonSchema(seconds_schema(0, 60))
]
TryTimeout = Annotated[
    float, PlainValidator(seconds_between(0, 30, False)), WithJsonSchema(seconds_schema(0, 30))
]


def url_problem(url: str) -> str:
    """Why ``url`` may not be a served-version URL ("" when it may)."""
    if not url.startswith(("http://", "https://")):
        return said("http: an http:// or https:// URL")
    if any(c in url for c in "\r\n\t\x00 "):
        return said("http: no spaces or control characters")
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return said("http: not a URL")
    if "@" in netloc:
        return said("http: no user or password in the URL")
    name = netloc.rsplit(":", 1)[0] if not netloc.endswith("]") else netloc
    if name != "{HOST}":
        return said("http: the URL's host must be {HOST} (the host being checked)")
    port = netloc.rsplit(":", 1)[1] if netloc.count(":") == 1 else ""
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        return said("http: not a port: %(port)s", port=repr(port))
    return ""


def unknown_names(text: str) -> list[str]:
    """``{NAME}`` placeholders in ``text`` that are not task variables."""
    return [n for n in _BRACED.findall(text) if n not in NAMES]


class VerifyServed(BaseModel):
    """Proof per host, after its switch, that it serves the new release."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    http: str
    expect: str = Field(default="{COMMIT}", min_length=1, max_length=MAX_EXPECT)
    header: str | None = None
    attempts: int = Field(default=10, ge=1, le=60)
    interval: Interval = 1.0
    timeout: TryTimeout = 5.0

    @model_validator(mode="after")
    def _valid(self) -> VerifyServed:
        problem = url_problem(self.http)
        if problem:
            raise _refused("verify_served", problem)
        if self.header is not None and not _HEADER.match(self.header):
            raise _refused("verify_served", said("header: a response header name, e.g. X-Release"))
        if any(ord(c) < 32 or ord(c) == 127 for c in self.expect):
            raise _refused("verify_served", said("expect: no control characters"))
        for key, text in (("http", self.http), ("expect", self.expect)):
            unknown = unknown_names(text)
            if unknown:
                raise _refused(
                    "verify_served",
                    said(
                        "%(key)s: unknown variable %(name)s (known: %(known)s)",
                        key=key,
                        name="{" + unknown[0] + "}",
                        known=", ".join(NAMES),
                    ),
                )
        return self

    @property
    def worst_seconds(self) -> float:
        """The longest a host can take to prove it (what the space's task limit bounds)."""
        return self.attempts * self.timeout + (self.attempts - 1) * self.interval
