"""Faults an independent review of issue 16 found, each made for real on the real fleet (a
slow host, a frozen or killed worker and rescuer, a database restart during recovery, a pull
host mid-deploy, a host keeping many releases, an emergency restart cut short), asserting what
issue 16 promises: every host on one complete release, and a record that says which."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from ferryman.db.models import Deploy, DeployHost, utcnow
from ferryman.errors import Conflict
from ferryman.jobs.recover_job import recover
from ferryman.services import deploy_views, queue
from tests.helpers import Repo, apply, deploy, live, project_config, release_dirs, unique
from tests.jobs.claiming import Claimer

pytestmark = pytest.mark.fleet
DEAD = "gone-host:1:dead"


def _orphan(db, deploy_id: int, stages: list[str]) -> None:
    record = [{"name": n, "status": "success", "hosts": {}} for n in stages]
    record[-1]["status"] = "running"
    with db.transaction() as s:
        s.execute(
            update(Deploy)
            .where(Deploy.id == deploy_id)
            .values(
                status="running",
                worker=DEAD,
                lease_expires_at=utcnow() - timedelta(seconds=5),
                finished_at=None,
                error=None,
                stages=record,
            )
        )


def _point(host, project: str, release: str) -> None:
    link = host.path(f"/srv/www/{project}")
    link.unlink()
    os.symlink(f"/srv/releases/{project}/{release}", link)


def _previous(db, deploy_id: int) -> dict[str, str]:
    with db.read() as s:
        rows = s.scalars(select(DeployHost).where(DeployHost.deploy_id == deploy_id))
        return {r.host: r.previous_release for r in rows}


def test_recovery_of_a_half_switched_deploy_with_one_slow_host_puts_every_host_back(
    db, settings, git_host, targets, tmp_path
):
    repo = Repo(git_host, tmp_path, unique("slowrec"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    repo.commit({"index.html": "v2\n"}, tag="v2")
    apply(db, project_config(repo.name, repo.url, targets))
    v1 = deploy(db, settings, repo.name, "v1")["release"]
    second = deploy(db, settings, repo.name, "v2")
    assert _previous(db, second["id"]) == {h.address: v1 for h in targets}
    # the worker died in the switch: the first two hosts had not been switched yet
    for host in targets[:2]:
        _point(host, repo.name, v1)
    _orphan(db, second["id"], ["prepare", "transfer", "pre_release", "switch"])
    # one host answers the probe more slowly than the others (here: an old release with a
    # big manifest to hash; a sparse file, so nothing is written to disk)
    old = targets[-1].path(f"/srv/releases/{repo.name}/20200101-000000_v0_0000000")
    old.mkdir()
    with open(old / ".ferryman-manifest", "wb") as fh:
        fh.truncate(400_000_000)

    rescuer = Claimer(db, "rescuer")
    assert rescuer.take_over_lost(30) == [second["id"]]
    assert asyncio.run(recover(db, settings, second["id"], rescuer.holder(second["id"]))) is True

    result: dict[str, Any] = deploy_views.get(db, second["id"])
    assert result["status"] == "failed", result
    assert {h.address: live(h, repo.name) for h in targets} == {h.address: v1 for h in targets}
    assert all(second["release"] not in release_dirs(h, repo.name) for h in targets)
    # the record of what each host served before the deploy is not rewritten by recovery
    assert _previous(db, second["id"]) == {h.address: v1 for h in targets}


def test_a_host_keeping_many_releases_is_put_back_on_its_release_when_a_deploy_fails(
    db, settings, git_host, targets, tmp_path
):
    repo = Repo(git_host, tmp_path, unique("manyrel"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    repo.commit({"index.html": "v2\n"}, tag="v2")
    apply(db, project_config(repo.name, repo.url, targets, keep_releases=100))
    v1 = deploy(db, settings, repo.name, "v1")["release"]
    # one host keeps 60 older releases (keep_releases allows 100)
    host = targets[0]
    releases = host.path(f"/srv/releases/{repo.name}")
    manifest = (releases / v1 / ".ferryman-manifest").read_bytes()
    for i in range(60):
        old = releases / f"20200101-{i:06d}_v0_0000000"
        old.mkdir()
        (old / ".ferryman-manifest").write_bytes(manifest)
    failing = {"post_release": "exit 3\n"}
    apply(db, project_config(repo.name, repo.url, targets, keep_releases=100, tasks=failing))

    result = deploy(db, settings, repo.name, "v2")

    assert result["status"] == "failed"
    assert {h.address: live(h, repo.name) for h in targets} == {h.address: v1 for h in targets}


def test_a_file_dropped_into_the_live_release_is_not_carried_into_the_next_release(
    db, settings, git_host, targets, tmp_path
):
    repo = Repo(git_host, tmp_path, unique("extra"))
    repo.commit({"index.html": "v1\n", "lib/a.php": "a\n"}, tag="v1")
    repo.commit({"index.html": "v2\n", "lib/a.php": "a\n"}, tag="v2")
    hosts = targets[:2]
    apply(db, project_config(repo.name, repo.url, hosts))
    v1 = deploy(db, settings, repo.name, "v1")["release"]
    # what an attacker who once could write into the webroot leaves behind
    for host in hosts:
        host.path(f"/srv/releases/{repo.name}/{v1}/lib/shell.php").write_text("<?php evil();\n")
        host.path(f"/srv/releases/{repo.name}/{v1}/lib/a.php").chmod(0o666)  # anyone may edit

    v2 = deploy(db, settings, repo.name, "v2")

    assert v2["status"] == "success", v2["error"]
    for host in hosts:
        release = host.path(f"/srv/releases/{repo.name}/{v2['release']}")
        assert (release / "index.html").read_text() == "v2\n"
        found = {
            "shell.php": (release / "lib/shell.php").exists(),
            "a.php mode": oct((release / "lib/a.php").stat().st_mode & 0o777),
        }
        # v2 is what its commit holds, with the modes of its manifest
        assert found == {"shell.php": False, "a.php mode": "0o644"}


def test_pull_recovery_leaves_no_host_that_was_mid_deploy_alone_on_the_new_release(
    db, settings, git_host, targets, tmp_path
):
    import threading

    from ferryman.services import agents, deploy_records, deploys
    from ferryman.services.projects import space_of_project
    from tests.helpers import ADMIN

    repo = Repo(git_host, tmp_path, unique("pullmid"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    hosts = [h.address for h in targets[:3]]
    config = project_config(repo.name, repo.url, targets[:3], mode="pull")
    apply(db, config)
    v1, v2 = "20200101-000000_v1_1111111", "20200102-000000_v2_2222222"
    request = deploys.request_deploy(db, ADMIN, repo.name, "production", "v1")
    deploy_records.set_live(
        db, request.project_id, "production", request.id, dict.fromkeys(hosts, v1)
    )
    with db.transaction() as s:  # v1 is on every host; v2 is being handed out
        s.execute(update(Deploy).where(Deploy.id == request.id).values(release_name=v2))
    assert queue.claim_next(db, DEAD) == request.id
    space = space_of_project(db, request.project_id)
    agents.create_tasks(db, request.id, space, hosts, "deploy", v2, dict.fromkeys(hosts, v1))
    agents.make_due(db, request.id, hosts)
    done, busy, _idle = hosts
    taken = agents.take(db, space, done)
    assert taken is not None, f"nothing due for {done}"
    task = taken[0]  # this host switched and reported
    agents.report(
        db, space, done, task.id, "post-deploy", 0, "", "success", v1, claim=task.claimed_by
    )
    taken = agents.take(db, space, busy)
    assert taken is not None, f"nothing due for {busy}"
    busy_task = taken[0]  # this one fetched its script: switching now
    _orphan(db, request.id, ["hosts"])
    rescuer = Claimer(db, "rescuer")
    assert rescuer.take_over_lost(30) == [request.id]

    recovered = threading.Thread(
        target=lambda: asyncio.run(recover(db, settings, request.id, rescuer.holder(request.id)))
    )
    recovered.start()
    answered: set[int] = set()  # rollback tasks the hosts carried out
    refused: list[str] = []  # what the busy host heard when its script went on
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and (recovered.is_alive() or not refused):
        for host, each in agents.tasks_of(db, request.id, "rollback").items():
            if each.status in ("due", "running") and each.id not in answered:
                taken = agents.take(db, space, host)  # the host fetches its rollback
                claim = taken[0].claimed_by if taken else ""  # its script carries its claim
                agents.report(db, space, host, each.id, "rollback", 0, "", "success", claim=claim)
                answered.add(each.id)
        if answered and not refused:
            # the busy host's script goes on: its next report is refused, so the real
            # script switches back by itself (tests/pipeline/test_pull.py shows it on hosts)
            with pytest.raises(Conflict) as no:
                agents.report(
                    db,
                    space,
                    busy,
                    busy_task.id,
                    "do-deploy",
                    0,
                    "",
                    "",
                    v1,
                    claim=busy_task.claimed_by,
                )
            refused.append(str(no.value))
        time.sleep(0.2)
    recovered.join(30)

    result = deploy_views.get(db, request.id)
    assert result["status"] == "failed", result
    assert set(agents.tasks_of(db, request.id, "rollback")) == {done}
    assert agents.tasks_of(db, request.id)[busy].status == "cancelled"
    live_now = deploy_views.live_releases(db, request.project_id, "production")
    assert live_now.get(busy) == v1, f"{busy} is recorded on what it never confirmed: {live_now}"
    assert refused and "already cancelled" in refused[0], refused


def _signal_tree(host, sig) -> None:
    """Freeze (SIGSTOP) or thaw (SIGCONT) a fleet host's sshd and every session it serves."""
    import signal as _signal

    from ferryman.testing.fleet import _descendants

    pid = host.pid()
    assert pid is not None
    for each in [pid, *_descendants(pid)]:
        try:
            os.kill(each, getattr(_signal, sig))
        except ProcessLookupError:
            pass


def test_a_run_frozen_in_the_switch_writes_no_live_release_after_it_was_taken_over(
    db, settings, git_host, targets, tmp_path
):
    import signal

    from ferryman.services import deploys
    from tests.helpers import ADMIN
    from tests.jobs.test_worker_loss import _wait, _worker

    repo = Repo(git_host, tmp_path, unique("frozensw"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    repo.commit({"index.html": "v2\n"}, tag="v2")
    apply(db, project_config(repo.name, repo.url, targets))
    v1 = deploy(db, settings, repo.name, "v1")
    slow_host = targets[2]
    wait = f'[ "$HOST" = {slow_host.address} ] || sleep 3\n'
    hook = {"pre_release": 'touch "$RELEASES/.pre.$HOST"\n' + wait}
    apply(db, project_config(repo.name, repo.url, targets, tasks=hook))
    doomed = deploys.request_deploy(db, ADMIN, repo.name, "production", "v2")
    original = _worker(settings)
    try:
        marker = slow_host.path(f"/srv/releases/{repo.name}/.pre.{slow_host.address}")
        _wait(marker.exists, 60, "the slow host's pre_release")
        time.sleep(0.7)  # its exit status reaches the worker
        _signal_tree(slow_host, "SIGSTOP")  # its sshd freezes: the switch there waits
        try:
            new = deploy_views.get(db, doomed.id)["release"]
            others = [h for h in targets if h is not slow_host]
            _wait(lambda: all(live(h, repo.name) == new for h in others), 30, "the switch")
            original.send_signal(signal.SIGSTOP)  # the worker freezes (a VM pause, a GC stall)
        finally:
            _signal_tree(slow_host, "SIGCONT")
        # another worker takes the deploy over and puts every host back on v1
        rescuer = Claimer(db, "rescuer")
        _wait(lambda: rescuer.take_over_lost(4) == [doomed.id], 30, "the lease")
        while not asyncio.run(recover(db, settings, doomed.id, rescuer.holder(doomed.id))):
            time.sleep(0.5)
        taken = deploy_views.get(db, doomed.id)
        assert taken["status"] == "failed"
        assert {live(h, repo.name) for h in targets} == {v1["release"]}
        recorded = deploy_views.live_releases(db, doomed.project_id, "production")
        assert set(recorded.values()) == {v1["release"]}
        original.send_signal(signal.SIGCONT)  # the frozen run wakes in a deploy not its own
        time.sleep(4)
    finally:
        original.send_signal(signal.SIGCONT)
        original.send_signal(signal.SIGTERM)
        original.wait(60)

    assert {live(h, repo.name) for h in targets} == {v1["release"]}
    recorded = deploy_views.live_releases(db, doomed.project_id, "production")
    # what each host serves, as recorded, is still the truth: v1 (its new release is gone)
    assert recorded == {h.address: v1["release"] for h in targets}


def test_a_frozen_recovery_never_switches_hosts_after_its_deploy_was_taken_from_it(
    db, settings, git_host, targets, tmp_path
):
    import signal
    import socket

    from ferryman.services import deploys
    from tests.helpers import ADMIN
    from tests.jobs.test_worker_loss import _wait, _worker

    repo = Repo(git_host, tmp_path, unique("stalerec"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    repo.commit({"index.html": "v2\n"}, tag="v2")
    apply(db, project_config(repo.name, repo.url, targets))
    v1 = deploy(db, settings, repo.name, "v1")["release"]
    # a pre_release hook that ignores SIGTERM: stopping it takes the TERM grace (3 s)
    hook = {"pre_release": "trap '' TERM\necho $$ > \"$RELEASES/.hook.pid\"\nsleep 60\n"}
    apply(db, project_config(repo.name, repo.url, targets, tasks=hook))
    doomed = deploys.request_deploy(db, ADMIN, repo.name, "production", "v2")
    pids = [h.path(f"/srv/releases/{repo.name}/.hook.pid") for h in targets]
    first = _worker(settings)
    second: Any = None
    try:
        _wait(lambda: all(p.exists() and p.read_text().strip() for p in pids), 60, "the hooks")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        second = _worker(settings)  # it takes the deploy over and starts its recovery
        prefix = f"{socket.gethostname()}:{second.pid}:"

        def recovering() -> bool:
            shown = deploy_views.get(db, doomed.id)
            with db.read() as s:
                worker = s.scalar(select(Deploy.worker).where(Deploy.id == doomed.id)) or ""
            return worker.startswith(prefix) and any(
                st["name"] == "recover" for st in shown["stages"]
            )

        _wait(recovering, 30, "the second worker's recovery")
        second.send_signal(signal.SIGSTOP)  # frozen while it stops the dead run's hooks
        # a third worker takes the deploy over, recovers it and ends it; the environment is
        # free, and the next deploy goes through
        rescuer = Claimer(db, "rescuer")
        _wait(lambda: rescuer.take_over_lost(4) == [doomed.id], 30, "the lease")
        while not asyncio.run(recover(db, settings, doomed.id, rescuer.holder(doomed.id))):
            time.sleep(0.5)
        assert deploy_views.get(db, doomed.id)["status"] == "failed"
        assert {live(h, repo.name) for h in targets} == {v1}
        apply(db, project_config(repo.name, repo.url, targets))
        later = deploy(db, settings, repo.name, "v2")
        assert later["status"] == "success", later["error"]
        assert {live(h, repo.name) for h in targets} == {later["release"]}
        second.send_signal(signal.SIGCONT)  # the frozen recovery wakes up
        time.sleep(8)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)

    # the deploy that ended last says every host serves its release: so must the hosts
    assert {h.address: live(h, repo.name) for h in targets} == {
        h.address: later["release"] for h in targets
    }


def test_a_database_blip_during_recovery_does_not_end_the_deploy_with_a_split_fleet(
    settings, git_host, targets, tmp_path
):
    import threading

    from ferryman.bootstrap import attach_key
    from ferryman.db.session import Database
    from ferryman.secretbox import SecretBox, load_key
    from ferryman.testing.postgres import PrivatePostgres, unavailable
    from tests.conftest import NET, set_approval

    reason = unavailable()
    if reason:
        pytest.skip(reason)
    pg = PrivatePostgres(host=f"{NET}.74")
    pg.start(15451)
    try:
        url = pg.create_database(unique("blip"))
        db = Database(url)
        db.upgrade()
        attach_key(db, SecretBox(load_key(settings.home)))
        set_approval(db, "production", False)
        repo = Repo(git_host, tmp_path, unique("blip"))
        repo.commit({"index.html": "v1\n"}, tag="v1")
        repo.commit({"index.html": "v2\n"}, tag="v2")
        apply(db, project_config(repo.name, repo.url, targets))
        v1 = deploy(db, settings, repo.name, "v1")["release"]
        second = deploy(db, settings, repo.name, "v2")
        for host in targets[:2]:  # the worker died in the switch
            _point(host, repo.name, v1)
        _orphan(db, second["id"], ["prepare", "transfer", "pre_release", "switch"])
        old = targets[-1].path(f"/srv/releases/{repo.name}/20200101-000000_v0_0000000")
        old.mkdir()
        with open(old / ".ferryman-manifest", "wb") as fh:  # a slow host: seconds to probe
            fh.truncate(800_000_000)
        claimer = Claimer(db, "rescuer")
        assert claimer.take_over_lost(30) == [second["id"]]
        rescuer = threading.Thread(
            target=lambda: asyncio.run(
                recover(db, settings, second["id"], claimer.holder(second["id"]))
            )
        )
        rescuer.start()
        deadline = time.monotonic() + 30
        while not any(s["name"] == "recover" for s in deploy_views.get(db, second["id"])["stages"]):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        pg.stop()  # PostgreSQL restarts while the hosts are probed
        time.sleep(4)
        pg.start()
        rescuer.join(60)
        result = deploy_views.get(db, second["id"])
        db.dispose()
    finally:
        pg.remove()
    # one release everywhere, whatever the outcome says (here: "recovery incomplete:
    # ... the database system is starting up", and nothing recovers it again)
    assert result["status"] == "failed"
    assert {h.address: live(h, repo.name) for h in targets} == {h.address: v1 for h in targets}


def test_an_emergency_rollback_whose_restart_was_cut_short_is_not_recorded_a_success(
    db, settings, git_host, targets, tmp_path
):
    import signal

    from ferryman.services import deploys
    from tests.helpers import ADMIN
    from tests.jobs.test_worker_loss import _wait, _worker

    repo = Repo(git_host, tmp_path, unique("restartcut"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    repo.commit({"index.html": "v2\n"}, tag="v2")
    apply(db, project_config(repo.name, repo.url, targets))
    v1 = deploy(db, settings, repo.name, "v1")["release"]
    deploy(db, settings, repo.name, "v2")
    # the restart: the service is stopped, then (30 s later here) started again
    restart = 'touch "$RELEASES/.down"\necho $$ > "$RELEASES/.restart.pid"\nsleep 30\n'
    restart += 'rm -f "$RELEASES/.down"\n'
    apply(db, project_config(repo.name, repo.url, targets, tasks={"restart": restart}))
    back = deploys.request_rollback(db, ADMIN, repo.name, "production", emergency=True)
    worker = _worker(settings)
    try:
        pids = [h.path(f"/srv/releases/{repo.name}/.restart.pid") for h in targets]
        _wait(lambda: all(p.exists() and p.read_text().strip() for p in pids), 60, "restarts")
        stages = lambda: {st["name"] for st in deploy_views.get(db, back.id)["stages"]}  # noqa: E731
        _wait(lambda: "restart" in stages(), 30, "the restart stage on record")
        worker.send_signal(signal.SIGKILL)  # the worker dies while the services restart
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
    rescuer = Claimer(db, "rescuer")
    _wait(lambda: rescuer.take_over_lost(4) == [back.id], 30, "the lease")
    while not asyncio.run(recover(db, settings, back.id, rescuer.holder(back.id))):
        time.sleep(0.5)

    result = deploy_views.get(db, back.id)
    down = [h.address for h in targets if h.path(f"/srv/releases/{repo.name}/.down").exists()]
    assert {live(h, repo.name) for h in targets} == {v1}
    # the restart was stopped half-way on every host: a success would say the service is up
    assert not (result["status"] == "success" and down), (result["status"], down)
