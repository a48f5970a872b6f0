"""The console stream's protocol 2: a long log replays in pages of lines ("lines" messages)
instead of a message per line — the same lines, masked the same, in the same order, from the
same cursor, with the same end — while a viewer that does not ask for it (an older CLI) still
gets a message per line."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ferryman.api.routes.console import PAGE_BYTES, PAGE_LINES, pages
from ferryman.app import create_app
from ferryman.pipeline.recorder import Recorder
from ferryman.services import deploy_views, deploys, users
from ferryman.services.audit import SYSTEM
from ferryman.services.deploy_records import DatabaseWriter
from tests.api.world import World, build_world

LINES = 100_000
SECRET = "hunter2-s3cret"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("console-pages"))


@pytest.fixture(scope="module")
def long_log(world: World) -> tuple[int, str]:
    """A cancelled deploy with a 100,000-line log, some lines printing a secret (stored
    masked), and a token that may read it."""
    deploy_id = world.queued_deploy()

    async def write() -> None:
        recorder = Recorder(DatabaseWriter(world.db), deploy_id, secrets=[SECRET])
        for i in range(LINES):
            text = f"line {i} password={SECRET}" if i % 1000 == 7 else f"line {i} " + "x" * 40
            recorder.log(text, host=f"127.0.0.{i % 3 + 1}:22", stage="build", stream="stdout")
            if i % 20_000 == 19_999:
                await recorder.flush()
        await recorder.flush()

    asyncio.run(write())
    deploys.request_cancel(world.db, SYSTEM, deploy_id)
    users.create_user(world.db, "pager", "correct horse battery", superuser=True)
    return deploy_id, users.login(world.db, "pager", "correct horse battery")


@pytest.fixture(scope="module")
def long_log_stored(world: World, long_log: tuple[int, str]) -> list[dict[str, Any]]:
    """The long log's lines as stored, read once: the deploy is cancelled, nothing adds to it
    (each test compares what it received with these and changes neither)."""
    return stored(world, long_log[0])


def stored(world: World, deploy_id: int, after: int = 0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while page := deploy_views.logs_after(world.db, deploy_id, after, 5000):
        out += page
        after = page[-1]["id"]
    return out


def replay(
    client: TestClient, url: str, token: str
) -> tuple[list[dict[str, Any]], list[str], dict]:
    """Every line received (in order), the type of every message, and the end message."""
    lines: list[dict[str, Any]] = []
    kinds: list[str] = []
    with client.websocket_connect(url, headers={"Authorization": f"Bearer {token}"}) as ws:
        while True:
            message = ws.receive_json()
            kinds.append(message["type"])
            if message["type"] == "lines":
                lines += message["lines"]
            elif message["type"] == "line":
                lines.append({k: v for k, v in message.items() if k != "type"})
            elif message["type"] == "end":
                return lines, kinds, message


def test_a_100000_line_log_replays_in_pages_with_every_line_in_order(
    world, long_log, long_log_stored
):
    deploy_id, token = long_log
    expected = long_log_stored
    assert len(expected) == LINES
    with TestClient(create_app(world.settings, world.db, embedded_worker=False)) as client:
        lines, kinds, end = replay(client, f"/api/v1/deploys/{deploy_id}/stream?protocol=2", token)
    assert lines == expected  # identical lines, in order, no gap, no repeat
    assert "line" not in kinds
    assert kinds.count("lines") <= LINES // PAGE_LINES + 5  # ~100 messages, not 100,000
    assert len(kinds) < 150
    assert kinds[-1] == "end" and end == {
        "type": "end",
        "status": "cancelled",
        "next": lines[-1]["id"],
    }
    assert not any(SECRET in line["text"] for line in lines)
    assert sum("password=***" in line["text"] for line in lines) == LINES // 1000


def test_a_resumed_stream_sends_the_same_lines_either_way_and_an_old_viewer_one_a_message(
    world, long_log, long_log_stored
):
    deploy_id, token = long_log
    expected = long_log_stored
    cursor = expected[-2500]["id"]  # a viewer that had all but the last 2,500 lines
    url = f"/api/v1/deploys/{deploy_id}/stream?after={cursor}"
    with TestClient(create_app(world.settings, world.db, embedded_worker=False)) as client:
        old, old_kinds, old_end = replay(client, url, token)  # no protocol: an older CLI
        new, new_kinds, new_end = replay(client, url + "&protocol=2", token)
    assert old == new == expected[-2499:]
    assert old_kinds.count("line") == 2499 and "lines" not in old_kinds
    assert "line" not in new_kinds and new_kinds.count("lines") <= 5
    assert old_end == new_end == {"type": "end", "status": "cancelled", "next": expected[-1]["id"]}


def test_a_page_holds_at_most_its_lines_and_bytes_and_a_long_line_goes_alone():
    short = [{"id": i, "text": "é" * 20} for i in range(1, 2501)]
    made = pages(short)
    assert [len(json.loads(p)["lines"]) for p in made] == [PAGE_LINES, PAGE_LINES, 500]
    wide = [{"id": i, "text": "é" * 300} for i in range(1, 2501)]  # ~600 bytes a line
    made = pages(wide)
    assert [line for p in made for line in json.loads(p)["lines"]] == wide  # in order
    assert all(json.loads(p)["type"] == "lines" for p in made)
    assert all(len(p.encode()) <= PAGE_BYTES for p in made)
    assert len(made) < 2 * (2500 * 620 // PAGE_BYTES + 1)  # split only as much as needed
    huge: list[dict[str, Any]] = [
        {"id": 1, "text": "a"},
        {"id": 2, "text": "b" * (PAGE_BYTES * 2)},
        {"id": 3},
    ]
    assert [[line["id"] for line in json.loads(p)["lines"]] for p in pages(huge)] == [[1], [2], [3]]
    assert pages([]) == []
