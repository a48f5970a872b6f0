"""Printing API results: a rich table for people, ``--json`` for scripts.

On a terminal, output fits the terminal. Off a terminal (a pipe, a file, a CI log) nothing is
wrapped or truncated at 80 columns: tables take the width their cells need and long lines
(hints, commands to run) stay whole, so a script can grep them and a person can paste them.
Colour is for terminals only (rich's default), and ``NO_COLOR`` turns it off there too."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.table import Table

# Off a terminal: wide enough that nothing a command prints is ever wrapped.
UNWRAPPED = 1_000_000


class CliConsole(Console):
    """A console that is as wide as the terminal on one, and unbounded off one. The decision
    is made at each print (tests and pipes swap ``sys.stdout``)."""

    def __init__(self, stderr: bool = False) -> None:
        super().__init__(stderr=stderr)

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if not self.is_terminal and self._width is None and not self._environ.get("COLUMNS"):
            return ConsoleDimensions(UNWRAPPED, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size

    def heading(self, title: str) -> None:
        """A rule across the terminal, or one ``── title ──`` line off it (a rule a million
        columns wide is no use in a log)."""
        if self.is_terminal:
            self.rule(title)
        else:
            self.print(f"── {title} ──", highlight=False)


console = CliConsole()
err = CliConsole(stderr=True)  # notes beside what scripts read from stdout


def print_json(data: Any, out: TextIO | None = None) -> None:
    """One JSON document on stdout (UTF-8 as is, indented: ``jq`` reads it either way)."""
    (out or sys.stdout).write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def show(rows: Any, columns: Sequence[str] = (), as_json: bool = False) -> None:
    """``rows``: a list of dicts (a table of ``columns``) or one dict (key/value lines)."""
    if as_json:
        print_json(rows)
        return
    if isinstance(rows, dict):
        table = Table("field", "value", show_header=False)
        for key, value in rows.items():
            table.add_row(escape(key), escape(_cell(value)))
        console.print(table)
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*(escape(_cell(row.get(c))) for c in columns))
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def pairs(items: list[str] | None, what: str) -> dict[str, str]:
    """``["K=V", ...]`` → ``{"K": "V"}``; a missing ``=`` is a usage error."""
    from ferryman.errors import ValidationError

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValidationError(f"{what}: expected KEY=VALUE, got {item!r}")
        out[key] = value
    return out
