"""The CLI reads the console stream's lines from either protocol: a page of lines from a
server that speaks protocol 2, a message per line from one that predates it — the same lines,
in the same order."""

from __future__ import annotations

import json

from ferryman.api.routes.console import pages
from ferryman.cli.follow import log_lines

LINES = [
    {"id": i, "ts": "2026-11-30T19:00:00+00:00", "host": "h1", "stage": "build",
     "stream": "stdout", "text": f"line {i} ✓"}
    for i in range(1, 2502)
]  # fmt: skip


def test_the_cli_reads_the_same_lines_from_pages_and_from_a_message_per_line():
    paged = [line for page in pages(LINES) for line in log_lines(json.loads(page))]
    one_each = [
        line
        for entry in LINES
        for line in log_lines(json.loads(json.dumps({"type": "line", **entry})))
    ]
    assert paged == one_each == LINES
    assert len(pages(LINES)) == 3


def test_messages_without_lines_carry_none():
    assert log_lines({"type": "deploy", "deploy": {"id": 1}}) == []
    assert log_lines({"type": "end", "status": "success", "next": 7}) == []
    assert log_lines({"type": "lines", "lines": []}) == []
