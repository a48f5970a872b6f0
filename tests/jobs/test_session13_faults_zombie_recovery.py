"""Session 13 fault review: a worker paused between two attempts at a recovery.

A worker that takes a dead worker's deploy over recovers it in ``Worker._recover``: it calls
``recover_job.recover`` with the take-over's token, and when the project lock is still held
(``recover`` returns False) it sleeps a third of a lease and calls it again. Each call trusts
the token it was handed: ``recover`` sets ``ctx.owned_until = now + lease`` without asking
the database whether that claim still holds the deploy (or whether the deploy is still
running at all), and its heartbeat first beats a third of a lease later. ``_recover`` checks
``keeper.done()`` before its sleep, never after it.

So a worker paused (SIGSTOP, a VM pause) in that sleep for longer than its lease wakes up
and runs a whole recovery — stop the deploy's commands, probe, switch every host back to
what it served before that deploy — for a deploy another worker recovered and ended while
it slept, after which a new deploy succeeded: the fleet is switched back under that
success; only the fenced writes that follow the switch are refused. ``recover`` now renews
the claim (and the lock) before it does anything, and stops when the claim is gone.

The lock held at the first attempt is made here by keeping the dead run's lock row alive a
little longer than its lease (in production: its heartbeat renews the lock just after the
lease, so a take-over can land between the two; or a same-named project of another space
holds the key, see ``test_session13_faults_spaces.py``).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from datetime import timedelta

import pytest
from sqlalchemy import delete, select, update

from ferryman.db.models import Deploy, Lock, utcnow
from ferryman.jobs.recover_job import recover
from ferryman.services import deploy_views, deploys, locks
from tests.helpers import ADMIN, Repo, apply, deploy, live, project_config, unique
from tests.jobs.claiming import Claimer
from tests.jobs.test_worker_loss import _wait, _worker

pytestmark = pytest.mark.fleet
PAUSED_LEASE = 9.0  # the paused worker's lease (a third of it: its sleep between attempts)


def _worker_of(db, deploy_id: int) -> str:
    with db.read() as s:
        return s.scalar(select(Deploy.worker).where(Deploy.id == deploy_id)) or ""


def test_a_worker_paused_between_recovery_attempts_never_switches_a_later_deploys_hosts(
    db, settings, git_host, targets, tmp_path
):
    hosts = targets[:2]
    repo = Repo(git_host, tmp_path, unique("zombie"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, hosts))
    v1 = deploy(db, settings, repo.name, "v1")["release"]
    slow = {"post_release": 'echo $$ > "$RELEASES/.hook.pid"\nsleep 60\n'}
    apply(db, project_config(repo.name, repo.url, hosts, tasks=slow))
    repo.commit({"index.html": "v2\n"}, tag="v2")
    doomed = deploys.request_deploy(db, ADMIN, repo.name, "production", "v2")
    key = locks.deploy_key(doomed.project_id, "production")

    dead = _worker(settings)  # lease 4 s
    paused = None
    try:
        pids = [h.path(f"/srv/releases/{repo.name}/.hook.pid") for h in hosts]
        _wait(lambda: all(p.exists() and p.read_text().strip() for p in pids), 60, "the hooks")
        dead.send_signal(signal.SIGKILL)  # switched everywhere, in post_release
        dead.wait(10)
        with db.transaction() as s:  # its lock outlives its lease (until the rescuer)
            s.execute(
                update(Lock)
                .where(Lock.key == key)
                .values(expires_at=utcnow() + timedelta(seconds=60))
            )
        paused = _worker(settings, FERRYMAN_LOCK_LEASE=str(PAUSED_LEASE))
        prefix = f"{socket.gethostname()}:{paused.pid}:"
        _wait(lambda: _worker_of(db, doomed.id).startswith(prefix), 30, "the take-over")
        time.sleep(0.5)  # its first attempt finds the lock held; it sleeps before the next
        assert not any(st["name"] == "recover" for st in deploy_views.get(db, doomed.id)["stages"])
        paused.send_signal(signal.SIGSTOP)

        # another worker takes the deploy over once the paused one's lease ran out, puts
        # every host back on v1 and ends it; then a new deploy of v2 succeeds
        rescuer = Claimer(db, "rescuer")
        _wait(lambda: rescuer.take_over_lost(30) == [doomed.id], 30, "the paused lease")
        with db.transaction() as s:
            s.execute(delete(Lock).where(Lock.key == key))
        assert asyncio.run(recover(db, settings, doomed.id, rescuer.holder(doomed.id)))
        assert deploy_views.get(db, doomed.id)["status"] == "failed"
        assert {live(h, repo.name) for h in hosts} == {v1}
        apply(db, project_config(repo.name, repo.url, hosts))
        later = deploy(db, settings, repo.name, "v2")
        assert later["status"] == "success", later["error"]
        assert {live(h, repo.name) for h in hosts} == {later["release"]}

        paused.send_signal(signal.SIGCONT)  # it wakes in its sleep between two attempts
        deadline = time.monotonic() + PAUSED_LEASE
        while time.monotonic() < deadline and all(
            live(h, repo.name) == later["release"] for h in hosts
        ):
            time.sleep(0.2)
        time.sleep(1)
    finally:
        for proc in (dead, paused):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)

    # the deploy that ended last says every host serves its release: so must the hosts
    assert {h.address: live(h, repo.name) for h in hosts} == {
        h.address: later["release"] for h in hosts
    }
    recorded = deploy_views.live_releases(db, doomed.project_id, "production")
    assert recorded == {h.address: later["release"] for h in hosts}
