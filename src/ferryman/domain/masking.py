"""Masking secret values in everything Ferryman stores or shows: log lines, recorded commands
and their output, error messages."""

from __future__ import annotations

from collections.abc import Iterable

MASK = "***"
MIN_LENGTH = 4  # shorter values would mask ordinary text ("1", "on"); they are not hidden


class Masker:
    def __init__(self, values: Iterable[str]) -> None:
        parts: set[str] = set()
        for value in values:
            for piece in [value, *value.splitlines()]:
                if len(piece.strip()) >= MIN_LENGTH:
                    parts.add(piece)
        # longest first, so a secret containing another is replaced whole
        self.values = sorted(parts, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self.values:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def __bool__(self) -> bool:
        return bool(self.values)
