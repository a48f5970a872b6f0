"""The ``migrations:`` command of a project: the script that runs it with its output bounded,
and the parser of what it prints.

The format, one applied migration per line::

    20240101_add_col reversible
    20240102_drop_table irreversible

A version is 1-128 of ``A-Z a-z 0-9 . _ : -`` (starting with a letter or digit); the mark is
``reversible`` or ``irreversible``. Blank lines and lines starting with ``#`` are skipped. Any
other line is not a migration: it is counted and a few are kept (control characters replaced)
to say what was wrong. A version listed twice counts once, irreversible if either line says so.
The output is read up to ``MAX_BYTES`` and ``MAX_ENTRIES`` versions: the command's output is
repository-controlled and trusted with nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_BYTES = 256 * 1024
MAX_ENTRIES = 5000
MAX_SHOWN = 5  # rejected lines kept as examples
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_LINE = re.compile(rf"^({_VERSION.pattern})[ \t]+(reversible|irreversible)[ \t]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class Migration:
    version: str
    reversible: bool

    def to_dict(self) -> dict[str, object]:
        return {"version": self.version, "reversible": self.reversible}


@dataclass
class Listing:
    """What a ``migrations:`` command printed, parsed."""

    applied: list[Migration] = field(default_factory=list)
    rejected: int = 0  # lines that were not a migration
    examples: list[str] = field(default_factory=list)  # a few of them, made printable
    truncated: bool = False  # the output or the list was cut at its bound


def printable(text: str, limit: int = 120) -> str:
    """``text`` as one safe line: control and direction characters shown as ``?``, cut."""
    cleaned = _CONTROL.sub("?", text)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def is_version(value: str) -> bool:
    return bool(_VERSION.fullmatch(value))


def parse(output: str, truncated: bool = False) -> Listing:
    """The applied migrations in ``output`` (see the module's format), in order."""
    listing = Listing(truncated=truncated)
    seen: dict[str, int] = {}
    lines = output.split("\n")
    if truncated and lines:
        lines.pop()  # the last line was cut: never read half of a line as a version
    for raw in lines:
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            listing.rejected += 1
            if len(listing.examples) < MAX_SHOWN:
                listing.examples.append(printable(line))
            continue
        version, reversible = match.group(1), match.group(2) == "reversible"
        if version in seen:
            index = seen[version]
            if not reversible:  # either line says irreversible: it is
                listing.applied[index] = Migration(version, False)
            continue
        if len(listing.applied) >= MAX_ENTRIES:
            listing.truncated = True
            break
        seen[version] = len(listing.applied)
        listing.applied.append(Migration(version, reversible))
    return listing


def bounded_script(command: str) -> str:
    """The task body that runs ``command`` with its stdout cut at ``MAX_BYTES`` + 1 bytes
    (one more than is read, so a cut is seen) on the host itself; its exit status is the
    command's (a command stopped by the cut is not a failure)."""
    return (
        "set +o pipefail\n"
        "{\n"
        f"{command}\n"
        f"}} | head -c {MAX_BYTES + 1}\n"
        'status="${PIPESTATUS[0]}"\n'
        '[ "$status" = 141 ] && status=0\n'
        'exit "$status"\n'
    )


def cut(output: str) -> tuple[str, bool]:
    """``output`` within ``MAX_BYTES`` (as text), and whether it was cut."""
    data = output.encode("utf-8", "replace")
    if len(data) <= MAX_BYTES:
        return output, False
    return data[:MAX_BYTES].decode("utf-8", "ignore"), True
