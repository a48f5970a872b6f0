"""Post-deploy watches (``watch:``) on the real fleet: after a deploy succeeds, its health
checks keep running for a window. A health endpoint (a small HTTP server on each host's own
address) that starts failing inside the window fails the watch, notifies, and with
``on_failure: rollback`` puts the environment back on the last good release through a normal
rollback queued by the system actor. The watch is a row, not a timer: a watch whose worker
died is carried on by another; a new deploy of the environment ends it."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from ferryman.db.models import AuditEntry, DeployWatch, NotifyChannel, NotifyDelivery, Space
from ferryman.jobs import watch_job
from ferryman.services import watch
from tests.helpers import Repo, apply, deploy, finish, live, project_config, unique

pytestmark = pytest.mark.fleet
PORT = 18090


class Endpoint:
    """Sick on the hosts in ``sick`` while they serve the release ``bad`` ("" for any)."""

    def __init__(self) -> None:
        self.sick: set[str] = set()
        self.bad, self.project = "", ""


@pytest.fixture
def endpoints(targets) -> Iterator[Endpoint]:
    state = Endpoint()
    servers = []

    for host in targets[:2]:

        class Handler(http.server.BaseHTTPRequestHandler):
            address, fleet_host = host.address, host

            def do_GET(self) -> None:
                serving = live(self.fleet_host, state.project) if state.project else None
                ok = self.address not in state.sick or (state.bad and serving != state.bad)
                self.send_response(200 if ok else 503)
                self.end_headers()
                self.wfile.write(b"ok" if ok else b"down")

            def log_message(self, *args: object) -> None:
                return

        server = http.server.ThreadingHTTPServer((host.address, PORT), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield state
    for server in servers:
        server.shutdown()
        server.server_close()


def _project(db, git_host, hosts, tmp_path, **watch_config):
    repo = Repo(git_host, tmp_path, unique("watch"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    config = project_config(
        repo.name,
        repo.url,
        hosts,
        health_check=[{"http": f"http://{{HOST}}:{PORT}/health", "retries": 1, "timeout": "2s"}],
        watch={"window": "1h", "every": "1s", **watch_config},
    )
    apply(db, config)
    return repo


def _channel(db) -> None:
    with db.transaction() as s:
        space = s.scalars(select(Space).where(Space.name == "default")).one()
        s.add(
            NotifyChannel(
                space_id=space.id,
                name="ops",
                kind="webhook",
                settings=db.box.seal('{"url": "http://127.0.0.1:9/hook"}'),
                events=["deploy.failed"],
            )
        )


def _watches(db, deploy_id: int) -> list[DeployWatch]:
    with db.read() as s:
        rows = s.scalars(select(DeployWatch).where(DeployWatch.deploy_id == deploy_id)).all()
        s.expunge_all()
        return list(rows)


def _tick(db, settings, worker: str = "w1") -> int:
    return asyncio.run(watch_job.tick(db, settings, worker))


def _until_ended(db, settings, deploy_id: int, worker: str = "w1") -> DeployWatch:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _tick(db, settings, worker)
        [row] = _watches(db, deploy_id)
        if row.status != watch.WATCHING:
            return row
        time.sleep(0.5)
    raise AssertionError("the watch never ended")


def test_a_health_endpoint_failing_in_the_window_rolls_back_to_the_last_good_release(
    db, settings, git_host, targets, tmp_path, endpoints
):
    hosts = targets[:2]
    _channel(db)
    repo = _project(db, git_host, hosts, tmp_path, on_failure="rollback")
    first = deploy(db, settings, repo.name, "v1")
    assert first["status"] == "success"
    repo.commit({"index.html": "v2\n"}, tag="v2")
    second = deploy(db, settings, repo.name, "v2")
    assert second["status"] == "success"
    [old] = _watches(db, first["id"])
    assert old.status == watch.ENDED  # the new deploy ended the first one's watch

    deadline = time.monotonic() + 30
    while not _watches(db, second["id"])[0].checks:  # healthy rounds: the watch goes on
        assert time.monotonic() < deadline
        _tick(db, settings)
        time.sleep(0.3)
    [row] = _watches(db, second["id"])
    assert row.status == watch.WATCHING
    endpoints.project, endpoints.bad = repo.name, second["release"]
    endpoints.sick.add(hosts[1].address)  # the release starts failing in the window
    row = _until_ended(db, settings, second["id"])
    assert row.status == watch.FAILED and hosts[1].address in row.reason
    assert "503" in row.reason and row.rollback_id is not None
    [shown] = watch.for_deploy(db, second["id"])  # GET /deploys/{id}/watches
    assert shown["status"] == "failed" and shown["rollback_id"] == row.rollback_id

    back = finish(db, settings, row.rollback_id)
    assert back["status"] == "success" and back["kind"] == "rollback", back["error"]
    assert back["requested_by"] == "system"
    assert {live(h, repo.name) for h in hosts} == {first["release"]}
    with db.read() as s:
        audit = [a.action for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
        sent = s.scalars(select(NotifyDelivery).where(NotifyDelivery.event == "deploy.failed"))
        messages = [str(d.message) for d in sent]
    assert "watch.failed" in audit and "rollback.request" in audit
    assert any("post-deploy watch failed" in m for m in messages), messages
    assert not _watches(db, back["id"])  # a rollback is not watched (it would loop)


def test_without_rollback_a_failing_watch_notifies_and_leaves_the_release(
    db, settings, git_host, targets, tmp_path, endpoints
):
    hosts = targets[:2]
    _channel(db)
    repo = _project(db, git_host, hosts, tmp_path)
    done = deploy(db, settings, repo.name, "v1")
    endpoints.sick.add(hosts[0].address)
    row = _until_ended(db, settings, done["id"])
    assert row.status == watch.FAILED and row.rollback_id is None
    assert {live(h, repo.name) for h in hosts} == {done["release"]}
    with db.read() as s:
        sent = s.scalars(select(NotifyDelivery).where(NotifyDelivery.event == "deploy.failed"))
        assert any("post-deploy watch failed" in str(d.message) for d in sent)


def test_a_watch_whose_worker_died_is_carried_on_by_another_and_passes_its_window(
    db, settings, git_host, targets, tmp_path, endpoints
):
    hosts = targets[:2]
    repo = _project(db, git_host, hosts, tmp_path)
    done = deploy(db, settings, repo.name, "v1")
    [row] = _watches(db, done["id"])
    with db.transaction() as s:  # a short window, already due
        fresh = s.get(DeployWatch, row.id)
        fresh.deadline = fresh.next_check_at = fresh.created_at
    claimed = watch.claim_due(db, "dead-worker", lease=1)  # claimed, then the worker died
    assert [c.watch_id for c in claimed] == [row.id]
    assert _tick(db, settings, "w2") == 0  # its lease still holds: nobody else checks it
    time.sleep(1.2)
    assert _tick(db, settings, "w2") == 1  # lease run out: another worker carries it on
    [row] = _watches(db, done["id"])
    assert row.status == watch.PASSED and row.checks == 1
    assert watch.record_pass(db, row.id, "dead-worker") == watch.ENDED  # the dead run's late word
