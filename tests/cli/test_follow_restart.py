"""`ferryman deploy --wait` and `ferryman logs --follow` across a server restart: a real
`ferryman serve` (no embedded worker) is stopped with SIGTERM while both follow a deploy that a
standalone `ferryman worker` runs on the fleet, then started again on the same port and
database. The deploy's `pre_release` hook waits at a gate (a file on each host) that the test
opens only once the server has exited, so the server's stop cannot have waited for the deploy,
and the lines after the gate are written while no server is up."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from functools import partial

import httpx
import pytest

from ferryman.services import deploy_views
from ferryman.testing.processes import FerrymanProcess, ferryman_exe
from tests.conftest import SERVICES
from tests.helpers import Repo, apply, create_admin, project_config, unique

pytestmark = pytest.mark.fleet
PORT = 18120
HOST = SERVICES["follow_server"]  # this xdist worker's own address
PATIENCE = 120.0  # a generous bound for anything to happen; never an assertion on time
GATE = "/srv/gate-follow"
HOOK = f"""echo "waiting at the gate"
while [ ! -e {GATE} ]; do sleep 0.1; done
for i in 1 2 3 4 5 6; do echo "after the gate $i"; sleep 0.1; done
"""


def _eventually(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + PATIENCE
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.1)


def _printed_log(stdout: str) -> list[str]:
    """The log lines a follower printed (``[host] text``), in order."""
    return [line.rstrip() for line in stdout.splitlines() if line.startswith("[")]


def test_a_follower_outlives_a_server_restart_and_exits_with_the_deploys_outcome(
    db, settings, git_host, targets, tmp_path
):
    create_admin(db)
    hosts = targets[:2]
    repo = Repo(git_host, tmp_path, unique("follow"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, hosts, tasks={"pre_release": HOOK}))
    env = {
        **os.environ,
        "FERRYMAN_HOME": str(settings.home),
        "FERRYMAN_WORKER_POLL": "0.2",
        "COLUMNS": "400",  # no wrapping of printed lines
    }
    env.pop("FERRYMAN_URL", None)
    env.pop("FERRYMAN_TOKEN", None)
    server = FerrymanProcess.serve(PORT, env, tmp_path / "server.log", worker=False, host=HOST)
    worker = FerrymanProcess.worker(env, tmp_path / "worker.log")
    followers: list[subprocess.Popen[bytes]] = []
    try:
        server.start()
        worker.start()
        token = httpx.post(
            server.url + "/api/v1/auth/login",
            json={"username": "alice", "password": "correct horse battery"},
        ).json()["token"]
        cli_env = {**env, "FERRYMAN_URL": server.url, "FERRYMAN_TOKEN": token}
        outputs = {name: (tmp_path / f"{name}.out", tmp_path / f"{name}.err") for name in "ab"}

        def run(name: str, *args: str) -> None:
            out, err = outputs[name]
            with out.open("wb") as o, err.open("wb") as e:
                followers.append(
                    subprocess.Popen([ferryman_exe(), *args], env=cli_env, stdout=o, stderr=e)
                )

        run("a", "deploy", repo.name, "--env", "production", "--ref", "v1", "--wait")
        _eventually("the deploy was queued", lambda: "queued" in outputs["a"][0].read_text())
        deploy_id = int(outputs["a"][0].read_text().split("#")[1].split()[0])
        run("b", "logs", str(deploy_id), "--follow")

        def at_the_gate(name: str) -> bool:
            printed: str = outputs[name][0].read_text()
            return printed.count("waiting at the gate") == 2

        for name in "ab":
            _eventually(
                f"follower {name} printed both hosts waiting at the gate",
                partial(at_the_gate, name),
            )

        server.terminate()
        assert server.wait(PATIENCE) is not None, "the server did not stop while followed"
        assert deploy_views.get(db, deploy_id)["status"] == "running"  # it did not wait for it
        for follower in followers:
            assert follower.poll() is None  # still following, not given up

        for host in hosts:
            host.path(GATE).touch()
        server.start()
        codes = [follower.wait(PATIENCE) for follower in followers]
        stored = deploy_views.logs_after(db, deploy_id, 0, 5000)
    finally:
        for follower in followers:
            if follower.poll() is None:
                follower.kill()
                follower.wait(10)
        server.stop()
        worker.stop()

    assert deploy_views.get(db, deploy_id)["status"] == "success"
    assert codes == [0, 0], [outputs[n][1].read_text() for n in "ab"]
    expected = [f"[{line['host'] or 'deploy'}] {line['text']}".rstrip() for line in stored]
    assert sum("after the gate" in line for line in expected) == 12
    for name in "ab":
        out, err = (path.read_text() for path in outputs[name])
        assert _printed_log(out) == expected  # every line, once, in order
        assert f"deploy #{deploy_id} succeeded" in out
        assert "reconnecting" in err and "Traceback" not in err


def test_following_a_deploy_that_does_not_exist_stops_at_once_with_the_refusal(
    db, settings, tmp_path
):
    create_admin(db)
    env = {**os.environ, "FERRYMAN_HOME": str(settings.home)}
    server = FerrymanProcess.serve(PORT + 1, env, tmp_path / "server.log", worker=False, host=HOST)
    server.start()
    try:
        token = httpx.post(
            server.url + "/api/v1/auth/login",
            json={"username": "alice", "password": "correct horse battery"},
        ).json()["token"]
        result = subprocess.run(
            [ferryman_exe(), "logs", "424242", "--follow"],
            env={**env, "FERRYMAN_URL": server.url, "FERRYMAN_TOKEN": token},
            capture_output=True,
            text=True,
            timeout=PATIENCE,
        )
    finally:
        server.stop()
    assert result.returncode == 2
    assert "no deploy #424242" in result.stderr and "reconnecting" not in result.stderr
