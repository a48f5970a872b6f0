"""Deploys are claimed through ``db/claims.py`` (issue 20): every claim has a holder token of
its own, and the token — not the worker's name — is the fence of the run's heartbeat, records
and outcome. A worker whose claim was lost and that later claims the same deploy again (its
lease ran out in an outage or a freeze, another worker took it and died too, and this one took
it back) gets a new token: the old run, on the same worker, can no longer renew, record or
finish."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from ferryman.db.models import Deploy
from ferryman.db.session import Database
from ferryman.errors import OwnershipLost
from ferryman.jobs.deploy_job import run_deploy
from ferryman.jobs.recover_job import recover
from ferryman.services import deploy_records, deploy_views, deploys, queue
from tests.helpers import ADMIN, Repo, apply, deploy, live, project_config, release_dirs, unique
from tests.jobs.claiming import Claimer
from tests.jobs.test_lost_lease import LEASE as LOST_LEASE
from tests.jobs.test_lost_lease import _expire, _row, _short_lease, _wait
from tests.jobs.test_queue import _queue_jobs

LEASE = 30.0
ERROR = {"code": "worker_lost", "message": "gone", "details": {}}


def _claim_of(db: Database, deploy_id: int) -> tuple[str, str, bool]:
    """The deploy's holder token, worker and whether it has a lease."""
    with db.read() as s:
        holder, worker, lease = s.execute(
            select(Deploy.claimed_by, Deploy.worker, Deploy.lease_expires_at).where(
                Deploy.id == deploy_id
            )
        ).one()
        return str(holder), str(worker), lease is not None


def test_the_same_worker_claiming_a_lost_deploy_again_fences_its_old_run(db_url: str):
    db = Database(db_url)
    db.upgrade()
    [job] = _queue_jobs(db, 1)
    with db.read() as s:
        project_id = s.scalar(select(Deploy.project_id).where(Deploy.id == job))
    assert project_id is not None
    me, other = Claimer(db, "me"), Claimer(db, "other")
    assert me.claim_next(lease=LEASE) == job
    old = me.holder(job)
    deploy_records.set_live(db, project_id, "staging", job, {"h1": "r-old"}, owner=old)
    _expire(db, job)  # the run froze past its lease
    assert other.take_over_lost(LEASE) == [job]
    _expire(db, job)  # and the worker that took it over died too
    assert me.take_over_lost(LEASE) == [job]  # not its own any more: it takes it back
    new = me.holder(job)
    assert new != old and new.startswith("me~") and old.startswith("me~")
    assert _claim_of(db, job) == (new, "me", True)

    # the old run, on the very same worker, is fenced everywhere
    assert not queue.renew_lease(db, job, old, LEASE)
    with pytest.raises(OwnershipLost):
        deploy_records.set_live(db, project_id, "staging", job, {"h1": "r-stale"}, owner=old)
    assert not deploy_records.write_batch(db, job, [], [], {"h1": {"status": "success"}}, [], old)
    assert not queue.finish_if_held(db, job, old, "success", None)
    assert _row(db, job) == ("running", "me")
    assert _claim_of(db, job) == (new, "me", True)
    assert deploy_views.live_releases(db, project_id, "staging") == {"h1": "r-old"}
    assert deploy_views.get(db, job)["hosts"] == []

    # the new claim holds it: it renews, records and writes the outcome, once
    assert queue.renew_lease(db, job, new, LEASE)
    deploy_records.set_live(db, project_id, "staging", job, {"h1": "r-back"}, owner=new)
    assert queue.finish_if_held(db, job, new, "failed", ERROR)
    assert _row(db, job) == ("failed", "me")
    assert _claim_of(db, job) == ("", "me", False)  # the claim ended with the outcome
    assert deploy_views.live_releases(db, project_id, "staging") == {"h1": "r-back"}
    assert not queue.finish_if_held(db, job, new, "success", None)
    assert not queue.renew_lease(db, job, new, LEASE)
    with db.read() as s:
        assert s.scalar(select(Deploy.error).where(Deploy.id == job)) == ERROR
    db.dispose()


def test_a_claim_gets_a_token_of_its_own_and_an_empty_token_never_holds(db_url: str):
    db = Database(db_url)
    db.upgrade()
    first, second = _queue_jobs(db, 2)
    w = Claimer(db, "w")
    assert w.claim_next(lease=LEASE) == first
    assert w.claim_next(lease=LEASE) == second
    assert w.holder(first) != w.holder(second)
    assert _claim_of(db, first) == (w.holder(first), "w", True)
    # a token fences its own deploy only
    assert not queue.renew_lease(db, second, w.holder(first), LEASE)
    assert not queue.finish_if_held(db, second, w.holder(first), "success", None)
    # a running deploy claimed by the old code (no token): nothing new-code renews it
    with db.transaction() as s:
        row = s.get(Deploy, second)
        assert row is not None
        row.claimed_by = ""
    assert not queue.renew_lease(db, second, "", LEASE)
    assert not queue.finish_if_held(db, second, "", "success", None)
    with pytest.raises(OwnershipLost):
        deploy_records.set_resolved(db, second, commit="c0ffee", release_name="r", owner="")
    # once its lease runs out it is taken over, with a token
    with db.transaction() as s:
        row = s.get(Deploy, second)
        assert row is not None and row.lease_expires_at is not None
        row.lease_expires_at = row.lease_expires_at - timedelta(seconds=2 * LEASE)
    rescuer = Claimer(db, "rescuer")
    assert rescuer.take_over_lost(LEASE) == [second]
    assert _claim_of(db, second) == (rescuer.holder(second), "rescuer", True)
    db.dispose()


@pytest.mark.fleet
def test_a_run_whose_worker_took_its_deploy_back_stops_before_the_switch(
    db, settings, git_host, targets, tmp_path
):
    """On the fleet: the run's lease lapses, another worker takes the deploy over and dies at
    once, and the run's own worker takes it back. Under the old fence (the worker's name) the
    run's next heartbeat would have found the deploy "its own" again and switched the hosts;
    with a token per claim it stops before its next host action and writes no outcome, and
    the new claim recovers the deploy."""
    settings = _short_lease(settings)
    hosts = targets[:2]
    repo = Repo(git_host, tmp_path, unique("retake"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, hosts))
    first = deploy(db, settings, repo.name, "v1")
    marker = f"/srv/{repo.name}.post_release"
    slow = {"pre_release": "sleep 4\n", "post_release": f"touch {marker}\n"}
    apply(db, project_config(repo.name, repo.url, hosts, tasks=slow))
    repo.commit({"index.html": "v2\n"}, tag="v2")
    queued = deploys.request_deploy(db, ADMIN, repo.name, "production", "v2")
    me, other = Claimer(db, "me"), Claimer(db, "other")
    assert me.claim_next(lease=LOST_LEASE) == queued.id
    old = me.holder(queued.id)
    outcome: list[str] = []
    runner = threading.Thread(
        target=lambda: outcome.append(asyncio.run(run_deploy(db, settings, queued.id, old)))
    )
    runner.start()
    _wait(
        "pre_release to start",
        60,
        lambda: any(
            s["name"] == "pre_release" and s["status"] == "running"
            for s in deploy_views.get(db, queued.id)["stages"]
        ),
    )
    _expire(db, queued.id)  # the run's heartbeats stopped getting through
    assert other.take_over_lost(LOST_LEASE) == [queued.id]
    _expire(db, queued.id)  # and the other worker died at once
    assert me.take_over_lost(LOST_LEASE) == [queued.id]  # the same worker takes it back
    new = me.holder(queued.id)
    assert new != old
    runner.join(60)
    assert outcome == ["lost"]
    assert _row(db, queued.id) == ("running", "me")
    assert _claim_of(db, queued.id) == (new, "me", True)  # the old run's end wrote nothing
    for host in hosts:
        assert live(host, repo.name) == first["release"]
        assert not host.path(marker).exists()

    assert asyncio.run(recover(db, settings, queued.id, new))
    result = deploy_views.get(db, queued.id)
    assert result["status"] == "failed" and result["error"]["code"] == "worker_lost", result
    assert result["error"]["details"]["recovered_by"] == "me"
    for host in hosts:
        assert live(host, repo.name) == first["release"]
        assert release_dirs(host, repo.name) == [first["release"]]
