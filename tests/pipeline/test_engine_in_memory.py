"""The engine against its ports in memory (``pipeline.memory``): no database, no fleet. What
a stage decides from the records — the release a rollback goes to, which pull hosts are
told to roll back — is checked here in milliseconds; the fleet tests show it on hosts."""

from __future__ import annotations

import asyncio

import pytest

from ferryman.config.project import parse_project
from ferryman.config.settings import load_settings
from ferryman.pipeline import pull, rollback
from ferryman.pipeline.context import Context, new_context
from ferryman.pipeline.memory import MemoryStore, MemoryTask, MemoryWriter

HOSTS = ["127.0.250.1", "127.0.250.2", "127.0.250.3"]  # never contacted: no SSH here


def _context(tmp_path, store: MemoryStore, writer: MemoryWriter, **env: object) -> Context:
    config = parse_project(
        {
            "project": "shop",
            "repo": "ssh://git@127.0.250.9/shop.git",
            "environments": {
                "production": {
                    "hosts": HOSTS,
                    "webroot": "/srv/www/shop",
                    "releases": "/srv/releases/shop",
                    **env,
                }
            },
        }
    )
    settings = load_settings({"FERRYMAN_HOME": str(tmp_path)})
    return new_context(settings, config, "production", deploy_id=7, store=store, writer=writer)


def test_a_rollback_goes_to_the_newest_good_release_before_what_the_hosts_serve(tmp_path):
    store = MemoryStore(
        releases={h: {"r1": "complete", "r2": "complete", "r3": "complete"} for h in HOSTS},
        good={"r1", "r2", "r3"},
        live=dict.fromkeys(HOSTS, "r3"),
        bad={"r2"},  # its rollout was aborted
    )
    ctx = _context(tmp_path, store, MemoryWriter())
    assert asyncio.run(rollback.target_release(ctx)) == "r1"
    ctx.options["force"] = True  # a forced rollback may go back to a bad release
    assert asyncio.run(rollback.target_release(ctx)) == "r2"


def test_a_rollback_never_goes_to_a_release_no_successful_deploy_completed(tmp_path):
    store = MemoryStore(
        releases={h: {"r1": "complete", "r2": "complete"} for h in HOSTS},
        good={"r1"},  # r2 was left by a failed deploy
        live=dict.fromkeys(HOSTS, "r2"),
    )
    ctx = _context(tmp_path, store, MemoryWriter())
    assert asyncio.run(rollback.target_release(ctx)) == "r1"
    store.live = dict.fromkeys(HOSTS, "r1")  # nothing good before r1
    assert asyncio.run(rollback.target_release(ctx)) is None


def test_what_the_hosts_really_serve_wins_over_the_record_when_choosing(tmp_path):
    store = MemoryStore(
        releases={h: {"r1": "complete", "r2": "complete", "r3": "complete"} for h in HOSTS},
        good={"r1", "r2", "r3"},
        live=dict.fromkeys(HOSTS, "r2"),  # the record is behind: a host serves r3
    )
    ctx = _context(tmp_path, store, MemoryWriter())
    assert asyncio.run(rollback.target_release(ctx, {HOSTS[0]: "r3"})) == "r2"


def test_a_recovered_pull_deploy_refuses_running_hosts_and_recalls_the_switched_ones(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(pull, "POLL", 0.01)
    done, busy, silent = HOSTS
    store = MemoryStore(live=dict.fromkeys(HOSTS, "r1"))
    store.tasks = [  # each took its go-ahead
        MemoryTask(done, "deploy", "r2", previous="r1", status="success", went_ahead=True),
        MemoryTask(busy, "deploy", "r2", previous="r1", status="running", went_ahead=True),
        MemoryTask(silent, "deploy", "r2", previous="r1", status="unreachable", went_ahead=True),
    ]
    store.live[done] = "r2"
    writer = MemoryWriter()
    ctx = _context(tmp_path, store, writer, mode="pull")
    ctx.undoing = True

    async def hosts_roll_back() -> None:  # each told host rolls back on its next poll
        while True:
            for task in list(store.tasks):
                if task.action == "rollback" and task.status == "due":
                    task.status = "running"
                    store.report(task.host, "rollback", "success")
            await asyncio.sleep(0.01)

    async def recover() -> str:
        hosts = asyncio.create_task(hosts_roll_back())
        try:
            return await asyncio.wait_for(pull.recover(ctx), 10)
        finally:
            hosts.cancel()

    said = asyncio.run(recover())
    assert "told to roll back" in said and all(h in said for h in HOSTS)
    by_host = {(t.host, t.action): t.status for t in store.tasks}
    # the busy host's next report is refused (it goes back by itself); as it may have
    # switched and may never be heard again, it is told to roll back too
    assert by_host[(busy, "deploy")] == "cancelled"
    assert {by_host[(h, "rollback")] for h in HOSTS} == {"success"}
    assert store.live == dict.fromkeys(HOSTS, "r1")


def test_a_failed_first_pull_deploy_takes_the_new_link_off_every_switched_host(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(pull, "POLL", 0.01)
    switched, refused, never = HOSTS
    store = MemoryStore()
    store.tasks = [  # nothing was served before: previous is ""
        MemoryTask(switched, "deploy", "r1", status="success", went_ahead=True),
        MemoryTask(refused, "deploy", "r1", status="failed", went_ahead=True),
        MemoryTask(never, "deploy", "r1", status="cancelled"),  # no go-ahead: never switched
    ]
    store.live[switched] = "r1"
    ctx = _context(tmp_path, store, MemoryWriter(), mode="pull")
    ctx.undoing = True

    async def tell() -> set[str]:
        async def host() -> None:
            while True:
                for task in store.tasks:
                    if task.action == "rollback" and task.status == "due":
                        task.status = "running"
                        store.report(task.host, "rollback", "success")
                await asyncio.sleep(0.01)

        running = asyncio.create_task(host())
        try:
            return await asyncio.wait_for(pull._tell_rollback(ctx), 10)
        finally:
            running.cancel()

    assert asyncio.run(tell()) == {switched}
    [back] = [t for t in store.tasks if t.action == "rollback"]
    assert (back.host, back.release) == (switched, "")  # to no release: unlink
    assert store.live == {}


def test_a_context_needs_records_somewhere(tmp_path):
    with pytest.raises(ValueError, match="store and a writer"):
        _context(tmp_path, MemoryStore(), None)  # type: ignore[arg-type]


def test_an_overdue_rollback_ends_the_wait_but_stays_handed_out_to_its_host(tmp_path, monkeypatch):
    monkeypatch.setattr(pull, "POLL", 0.01)
    back, away = HOSTS[0], HOSTS[1]
    store = MemoryStore(live={back: "r2", away: "r2"})
    store.tasks = [
        MemoryTask(h, "deploy", "r2", previous="r1", status="success", went_ahead=True)
        for h in (back, away)
    ]
    store.unreachable = {away}  # it switched, then went away before its rollback
    ctx = _context(tmp_path, store, MemoryWriter(), mode="pull")
    ctx.undoing = True

    async def tell() -> set[str]:
        async def host() -> None:
            while True:
                for task in store.tasks:
                    if task.host == back and task.action == "rollback" and task.status == "due":
                        task.status = "running"
                        store.report(back, "rollback", "success")
                await asyncio.sleep(0.01)

        running = asyncio.create_task(host())
        try:
            return await asyncio.wait_for(pull._tell_rollback(ctx), 10)
        finally:
            running.cancel()

    assert asyncio.run(tell()) == {back, away}
    still = [t for t in store.tasks if t.host == away and t.action == "rollback"]
    assert [t.status for t in still] == ["due"]  # it rolls back whenever it polls again
    store.unreachable.clear()
    still[0].status = "running"
    store.report(away, "rollback", "success")
    assert store.live == {back: "r1", away: "r1"}
