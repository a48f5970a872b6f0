"""Printing API results: a rich table for people, ``--json`` for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()
err = Console(stderr=True)  # notes beside what scripts read from stdout


def show(rows: Any, columns: Sequence[str] = (), as_json: bool = False) -> None:
    """``rows``: a list of dicts (a table of ``columns``) or one dict (key/value lines)."""
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        return
    if isinstance(rows, dict):
        table = Table("field", "value", show_header=False)
        for key, value in rows.items():
            table.add_row(key, _cell(value))
        console.print(table)
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
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
