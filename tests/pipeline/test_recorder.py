"""The recorder's batches: written whole or not at all, and never twice — not even when the
flusher is stopped in the middle of a write (the thread finishes it)."""

from __future__ import annotations

import asyncio
import time

import pytest

from ferryman.pipeline.recorder import Recorder
from ferryman.services import deploy_records, deploy_views, deploys
from ferryman.services.audit import SYSTEM
from ferryman.services.deploy_records import DatabaseWriter
from tests.api.world import World, build_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("recorder"))


def test_a_flush_cancelled_mid_write_neither_loses_nor_repeats_lines(world, monkeypatch):
    deploy_id = world.queued_deploy()
    real = deploy_records.write_batch

    def slow(*args, **kwargs):
        time.sleep(0.3)  # the cancel arrives while the thread is still writing
        return real(*args, **kwargs)

    monkeypatch.setattr(deploy_records, "write_batch", slow)

    async def scenario() -> None:
        recorder = Recorder(DatabaseWriter(world.db), deploy_id)
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
        recorder = Recorder(DatabaseWriter(world.db), deploy_id)
        recorder.log("one")
        with pytest.raises(RuntimeError):
            await recorder.flush()
        recorder.log("two")
        await recorder.flush()

    asyncio.run(scenario())
    texts = [line["text"] for line in deploy_views.logs_after(world.db, deploy_id, 0, 100)]
    assert texts == ["one", "two"]
    deploys.request_cancel(world.db, SYSTEM, deploy_id)


def test_a_host_counts_once_in_a_stage_however_often_it_reports(world):
    recorder = Recorder(DatabaseWriter(world.db), world.queued_deploy())
    recorder.stage_start("switch", 2)
    recorder.stage_host("switch", "a", False, 0.1)
    recorder.stage_host("switch", "a", True, 0.2)  # e.g. reported again by a retry
    recorder.stage_host("switch", "b", True, 0.1)
    stage = recorder.stages[-1]
    assert (stage["done"], stage["failed"], stage["total"]) == (2, 0, 2)


def test_a_run_that_lost_its_deploy_writes_nothing_over_the_new_owner_s_record(world):
    from sqlalchemy import update

    from ferryman.db.models import Deploy

    deploy_id = world.queued_deploy()
    with world.db.transaction() as s:
        s.execute(  # another claim holds it now: its token is the fence
            update(Deploy)
            .where(Deploy.id == deploy_id)
            .values(status="running", worker="new-owner", claimed_by="new-owner")
        )
    told: list[str] = []
    recorder = Recorder(DatabaseWriter(world.db), deploy_id)
    recorder.owner = "old-owner"
    recorder.on_lost = lambda: told.append("lost")
    recorder.stage_start("switch", 1)
    recorder.host("h1", status="success")
    recorder.log("a line the old owner should not write")

    asyncio.run(recorder.flush())
    asyncio.run(recorder.flush())

    assert told == ["lost"] and recorder.refused
    view = deploy_views.get(world.db, deploy_id)
    assert view["stages"] == [] and view["hosts"] == []
    page = deploy_views.log_page(world.db, SYSTEM, deploy_id, 0, 100)
    assert "old owner" not in str(page)


def test_every_record_a_run_writes_is_refused_once_its_deploy_was_taken_over(world):
    from sqlalchemy import select, update

    from ferryman.db.models import Deploy, Release
    from ferryman.domain.rollout import Rollout
    from ferryman.errors import OwnershipLost
    from ferryman.services import rollouts

    deploy_id = world.queued_deploy()
    with world.db.transaction() as s:
        s.execute(  # another claim holds it now: its token is the fence
            update(Deploy)
            .where(Deploy.id == deploy_id)
            .values(status="running", worker="new-owner", claimed_by="new-owner")
        )
        project_id, env = s.execute(
            select(Deploy.project_id, Deploy.env).where(Deploy.id == deploy_id)
        ).one()
    db, stale = world.db, "old-owner"
    writes = {
        "set_live": lambda owner: deploy_records.set_live(
            db, project_id, env, deploy_id, {"h1": "r-stale"}, owner=owner
        ),
        "record_releases": lambda owner: deploy_records.record_releases(
            db, project_id, env, deploy_id, "c0ffee", "r-stale", ["h1"], "complete", owner
        ),
        "mark_removed": lambda owner: deploy_records.mark_removed(
            db, project_id, env, {"h1": ["r-stale"]}, deploy_id=deploy_id, owner=owner
        ),
        "set_resolved": lambda owner: deploy_records.set_resolved(
            db, deploy_id, commit="c0ffee", release_name="r-stale", owner=owner
        ),
        "set_options": lambda owner: deploy_records.set_options(
            db, deploy_id, {"artifact": {"stale": True}}, owner
        ),
        "rollouts.save": lambda owner: rollouts.save(
            db, deploy_id, Rollout(batches=[["h1"]], next_batch=1), owner
        ),
        "rollouts.mark_bad": lambda owner: rollouts.mark_bad(
            db, project_id, env, "r-stale", deploy_id=deploy_id, owner=owner
        ),
    }
    for name, write in writes.items():
        with pytest.raises(OwnershipLost):
            write(stale)
        with db.read() as s:
            deploy = s.get(Deploy, deploy_id)
            assert deploy is not None
            assert deploy.release_name != "r-stale" and "artifact" not in (deploy.options or {})
            assert not deploy.rollout, name
            assert s.scalars(select(Release).where(Release.name == "r-stale")).all() == [], name
        assert "h1" not in deploy_views.live_releases(db, project_id, env), name

    for write in writes.values():  # the owner writes
        write("new-owner")
    assert deploy_views.live_releases(db, project_id, env)["h1"] == "r-stale"


def test_each_stage_is_announced_in_the_server_log_as_it_ends_not_when_the_run_ends(caplog):
    from ferryman.pipeline.memory import MemoryWriter

    recorder = Recorder(MemoryWriter(), 41)
    caplog.set_level("INFO", logger="ferryman.deploys")
    with recorder.stage("checkout", 1):
        pass
    told = [r for r in caplog.records if getattr(r, "event", "") == "stage_finished"]
    assert [(r.deploy_id, r.stage, r.status) for r in told] == [(41, "checkout", "success")]
    with pytest.raises(RuntimeError), recorder.stage("transfer", 3):
        raise RuntimeError("a host went away")
    told = [r for r in caplog.records if getattr(r, "event", "") == "stage_finished"]
    assert [(r.stage, r.status) for r in told] == [("checkout", "success"), ("transfer", "failed")]
    assert all(r.duration >= 0 for r in told)
    assert told[-1].levelname == "WARNING"  # a failed stage stands out in the log
