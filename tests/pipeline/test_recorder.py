"""The recorder's batches: written whole or not at all, and never twice — not even when the
flusher is stopped in the middle of a write (the thread finishes it)."""

from __future__ import annotations

import asyncio
import time

import pytest

from ferryman.pipeline.recorder import Recorder
from ferryman.services import deploy_records, deploy_views, deploys
from ferryman.services.audit import SYSTEM
from tests.api.world import World, build_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("recorder"))


def test_a_flush_cancelled_mid_write_neither_loses_nor_repeats_lines(world, monkeypatch):
    deploy_id = world.queued_deploy()
    real = deploy_records.write_batch

    def slow(*args, **kwargs):
        time.sleep(0.3)  # the cancel arrives while the thread is still writing
        real(*args, **kwargs)

    monkeypatch.setattr(deploy_records, "write_batch", slow)

    async def scenario() -> None:
        recorder = Recorder(world.db, deploy_id)
        for i in range(5):
            recorder.log(f"line {i}")
        flushing = asyncio.create_task(recorder.flush())
        await asyncio.sleep(0.05)
        flushing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await flushing
        recorder.log("after")
        await recorder.flush()

    asyncio.run(scenario())
    texts = [line["text"] for line in deploy_views.logs_after(world.db, deploy_id, 0, 100)]
    assert texts == [f"line {i}" for i in range(5)] + ["after"]
    deploys.request_cancel(world.db, SYSTEM, deploy_id)


def test_a_failed_write_keeps_the_whole_batch_for_the_next_flush(world, monkeypatch):
    deploy_id = world.queued_deploy()
    real = deploy_records.write_batch
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database is locked")
        real(*args, **kwargs)

    monkeypatch.setattr(deploy_records, "write_batch", flaky)

    async def scenario() -> None:
        recorder = Recorder(world.db, deploy_id)
        recorder.log("one")
        with pytest.raises(RuntimeError):
            await recorder.flush()
        recorder.log("two")
        await recorder.flush()

    asyncio.run(scenario())
    texts = [line["text"] for line in deploy_views.logs_after(world.db, deploy_id, 0, 100)]
    assert texts == ["one", "two"]
    deploys.request_cancel(world.db, SYSTEM, deploy_id)
