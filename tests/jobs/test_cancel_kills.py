"""A cancel stops the command running now — the build in its sandbox on the deploy host, a
hook on the targets — instead of waiting for it; the deploy then undoes as usual."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from ferryman import sandbox
from ferryman.config.settings import load_settings
from ferryman.db.models import Deploy, Lock, utcnow
from ferryman.jobs.deploy_job import run_deploy
from ferryman.services import deploy_views, deploys
from tests.helpers import (
    ADMIN,
    Repo,
    apply,
    deploy,
    finish,
    live,
    printed,
    project_config,
    release_dirs,
    unique,
)
from tests.jobs.claiming import Claimer

pytestmark = pytest.mark.fleet
STEPS = 20


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _wait(predicate, what: str) -> None:
    deadline = time.monotonic() + 60
    while not predicate():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


def _start(db, settings, git_host, targets, tmp_path, tasks):
    repo = Repo(git_host, tmp_path, unique("kill"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, targets))
    first = deploy(db, settings, repo.name, "v1")
    apply(db, project_config(repo.name, repo.url, targets, tasks=tasks))
    repo.commit({"index.html": "v2\n"}, tag="v2")
    queued = deploys.request_deploy(db, ADMIN, repo.name, "production", "v2")
    runner = threading.Thread(target=finish, args=(db, settings, queued.id))
    runner.start()
    return repo, first["release"], queued.id, runner


def _ends_cancelled_on_the_old_release(db, repo, first, deploy_id, targets) -> None:
    result = deploy_views.get(db, deploy_id)
    assert result["status"] == "cancelled", result["error"]
    for host in targets:
        assert live(host, repo.name) == first
        assert release_dirs(host, repo.name) == [first]
    with db.read() as s:
        assert s.query(Lock).count() == 0


def _steps(settings, deploy_id: int) -> list[Path]:
    return list(settings.workspaces.glob(f"*/deploy-{deploy_id}/src/steps"))


def test_a_cancel_kills_the_running_build_and_its_whole_sandbox(
    db, settings, git_host, targets, tmp_path
):
    loop = f'for i in $(seq {STEPS}); do echo "step $i"; echo "$i" >> steps; sleep 1; done\n'
    repo, first, deploy_id, runner = _start(
        db, settings, git_host, targets, tmp_path, {"post_deploy": "sleep 600 &\n" + loop}
    )
    _wait(
        lambda: any(len(p.read_text().split()) >= 2 for p in _steps(settings, deploy_id)),
        "the build's second step",
    )
    deploys.request_cancel(db, ADMIN, deploy_id, "wrong branch")
    runner.join(120)

    _ends_cancelled_on_the_old_release(db, repo, first, deploy_id, targets)
    assert len(printed(db, deploy_id, "post_deploy")) < STEPS // 2
    uid = sandbox.uid_for(settings, deploy_id)
    assert uid is not None and sandbox.running_as(uid) == []  # the background sleep too
    steps = [s for s in deploy_views.steps_of(db, deploy_id) if s["stage"] == "post_deploy"]
    assert steps[-1]["output"] == "stopped: cancelled by alice: wrong branch"


def test_a_cancel_stops_a_hook_running_on_the_targets(db, settings, git_host, targets, tmp_path):
    hook = f'echo $$ > "$RELEASES/../hook.pid"\nfor i in $(seq {STEPS}); do sleep 1; done\n'
    repo, first, deploy_id, runner = _start(
        db, settings, git_host, targets, tmp_path, {"pre_release": hook}
    )
    pid_files = [h.path("/srv/releases/hook.pid") for h in targets]
    for path in pid_files:
        path.unlink(missing_ok=True)
    _wait(lambda: all(p.exists() and p.read_text().strip() for p in pid_files), "every hook")
    pids = [int(p.read_text()) for p in pid_files]
    deploys.request_cancel(db, ADMIN, deploy_id, "not now")
    runner.join(120)

    _ends_cancelled_on_the_old_release(db, repo, first, deploy_id, targets)
    assert [_state(pid) for pid in pids] == ["gone"] * len(pids)  # reaped: not even a zombie
    for host in targets:
        assert list(host.path(f"/srv/releases/{repo.name}/.ferryman-run").iterdir()) == []
    stopped = [
        line["text"]
        for line in deploy_views.logs_after(db, deploy_id, limit=5000)
        if "stopped 1 running command" in line["text"]
    ]
    assert len(stopped) == len(targets)


def test_a_run_whose_deploy_was_taken_over_kills_its_build_at_once(
    db, settings, git_host, targets, tmp_path
):
    settings = load_settings(
        {
            "FERRYMAN_HOME": str(settings.home),
            "FERRYMAN_LOCK_LEASE": "3",
            "FERRYMAN_SANDBOX_UID_BASE": str(settings.sandbox_uid_base),  # this worker's uids
        }
    )
    repo = Repo(git_host, tmp_path, unique("lostbuild"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    loop = f'for i in $(seq {STEPS}); do echo "$i" >> steps; sleep 1; done\n'
    apply(db, project_config(repo.name, repo.url, targets, tasks={"post_deploy": loop}))
    queued = deploys.request_deploy(db, ADMIN, repo.name, "production", "v1")
    first_worker = Claimer(db, "first-worker")
    assert first_worker.claim_next(lease=3) == queued.id
    outcome: list[str] = []
    runner = threading.Thread(
        target=lambda: outcome.append(
            asyncio.run(run_deploy(db, settings, queued.id, first_worker.holder(queued.id)))
        )
    )
    runner.start()
    _wait(
        lambda: any(len(p.read_text().split()) >= 2 for p in _steps(settings, queued.id)),
        "the build's second step",
    )
    with db.transaction() as s:  # as if its heartbeats had stopped getting through
        s.execute(
            update(Deploy)
            .where(Deploy.id == queued.id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    assert Claimer(db, "other-worker").take_over_lost(3) == [queued.id]
    # how far the build got, read until its workspace goes with the run
    seen, deadline = 0, time.monotonic() + 120
    while runner.is_alive() and time.monotonic() < deadline:
        for path in _steps(settings, queued.id):
            with contextlib.suppress(OSError):
                seen = max(seen, len(path.read_text().split()))
        time.sleep(0.1)
    runner.join(10)

    assert outcome == ["lost"]
    uid = sandbox.uid_for(settings, queued.id)
    assert uid is not None and sandbox.running_as(uid) == []
    assert 2 <= seen < STEPS // 2  # stopped at once, not run to its end
    # a build stopped half way is never kept for a retry (a retry builds again)
    assert list(settings.kept_builds.glob(f"deploy-{queued.id}")) == []
