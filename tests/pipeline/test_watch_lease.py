"""A post-deploy watch holds its lease for as long as a round of checks runs: a round longer
than the lease (many hosts, slow health checks) renews it, so a second worker never steals the
watch and the first one concludes it. The claim is the fence: a claim that lost its lease — even
to the same worker claiming again — renews nothing and writes no outcome. On the real fleet,
with a health endpoint that answers slower than the lease."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from ferryman.db.models import DeployWatch, Release
from ferryman.db.session import Database
from ferryman.jobs import watch_job
from ferryman.services import watch
from tests.helpers import Repo, apply, deploy, project_config, unique

pytestmark = pytest.mark.fleet
PORT = 18091
SLOW = 3.0  # seconds the endpoint takes to answer: three leases of LEASE
LEASE = 1.0


class Slow:
    def __init__(self) -> None:
        self.requests = 0
        self.delay = 0.0


@pytest.fixture
def slow_endpoint(targets) -> Iterator[Slow]:
    state = Slow()
    host = targets[0]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests += 1
            time.sleep(state.delay)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer((host.address, PORT), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state
    server.shutdown()
    server.server_close()


def _deployed_watch(db, settings, git_host, targets, tmp_path) -> int:
    """A deployed project whose watch is due now and whose window is over (one round ends it)."""
    repo = Repo(git_host, tmp_path, unique("lease"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    config = project_config(
        repo.name,
        repo.url,
        targets[:1],
        health_check=[{"http": f"http://{{HOST}}:{PORT}/health", "retries": 1, "timeout": "20s"}],
        watch={"window": "1h", "every": "1s"},
    )
    apply(db, config)
    done = deploy(db, settings, repo.name, "v1")
    assert done["status"] == "success", done["error"]
    with db.transaction() as s:
        row = s.scalars(select(DeployWatch).where(DeployWatch.deploy_id == done["id"])).one()
        row.deadline = row.next_check_at = row.created_at
        return int(row.id)


def _row(db: Database, watch_id: int) -> DeployWatch:
    with db.read() as s:
        row = s.get(DeployWatch, watch_id)
        assert row is not None
        s.expunge(row)
        return row


def test_a_round_slower_than_the_lease_keeps_its_watch_from_a_second_worker(
    db, settings, git_host, targets, tmp_path, slow_endpoint
):
    watch_id = _deployed_watch(db, settings, git_host, targets, tmp_path)
    slow_endpoint.delay, slow_endpoint.requests = SLOW, 0
    first: list[int] = []
    runner = threading.Thread(
        target=lambda: first.append(asyncio.run(watch_job.tick(db, settings, "w1", LEASE)))
    )
    runner.start()
    while not slow_endpoint.requests:  # w1 claimed the watch and its round is under way
        assert runner.is_alive()
        time.sleep(0.05)
    stolen = 0
    while runner.is_alive():  # a second worker tries all along the first one's round
        stolen += asyncio.run(watch_job.tick(db, settings, "w2", LEASE))
        time.sleep(0.2)
    runner.join()
    assert first == [1] and stolen == 0
    row = _row(db, watch_id)
    assert row.status == watch.PASSED and row.checks == 1, row.reason
    assert row.claimed_by == "" and row.lease_until is None
    assert slow_endpoint.requests == 1  # one round, by one worker


def test_a_claim_that_lost_its_lease_renews_nothing_and_writes_no_outcome(
    db, settings, git_host, targets, tmp_path, slow_endpoint
):
    watch_id = _deployed_watch(db, settings, git_host, targets, tmp_path)
    [lost] = watch.claim_due(db, "w1", lease=0.5)
    time.sleep(0.7)  # w1 stalled past its lease: the watch is due again — to w1 itself
    [again] = watch.claim_due(db, "w1", lease=60)
    assert again.holder != lost.holder
    assert watch.renew(db, watch_id, lost.holder, 60) is False
    assert watch.record_failure(db, watch_id, lost.holder, "h", "late word") == watch.ENDED
    assert watch.record_pass(db, watch_id, lost.holder) == watch.ENDED
    assert watch.record_pass(db, watch_id, "w1") == watch.ENDED  # the worker's bare name
    row = _row(db, watch_id)
    assert row.status == watch.WATCHING and row.checks == 0 and row.claimed_by == again.holder
    with db.read() as s:
        assert not s.scalars(select(Release).where(Release.bad.is_(True))).all()
    assert watch.renew(db, watch_id, again.holder, 60) is True  # the live claim decides
    assert watch.record_pass(db, watch_id, again.holder) == watch.PASSED


def test_a_round_whose_watch_was_ended_meanwhile_is_abandoned_and_writes_nothing(
    db, settings, git_host, targets, tmp_path, slow_endpoint
):
    watch_id = _deployed_watch(db, settings, git_host, targets, tmp_path)
    slow_endpoint.delay, slow_endpoint.requests = SLOW, 0
    done: list[int] = []
    runner = threading.Thread(
        target=lambda: done.append(asyncio.run(watch_job.tick(db, settings, "w1", LEASE)))
    )
    runner.start()
    while not slow_endpoint.requests:  # the round is under way
        assert runner.is_alive()
        time.sleep(0.05)
    row = _row(db, watch_id)
    with db.transaction() as s:
        watch.end_for_env(s, row.project_id, row.env, "deploy #0 requested")
    runner.join()
    row = _row(db, watch_id)
    assert done == [1] and row.status == watch.ENDED and row.checks == 0
