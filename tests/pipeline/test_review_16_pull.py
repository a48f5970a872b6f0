"""Review of the pull-mode go-ahead (issue 16) on the real fleet: a real ``ferryman serve`` (API
only), real ``ferryman worker`` processes killed with SIGKILL, and every host running the
generated poller and script. Asserted on the hosts (where each webroot link points, which
release dirs exist, what the hooks and the poller printed) and on the records."""

from __future__ import annotations

import http.server
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from ferryman.bootstrap import prepare_home
from ferryman.config.project import parse_project
from ferryman.db.session import Database
from ferryman.services import agents, deploy_views, deploys, projects
from ferryman.services.audit import SYSTEM
from tests.conftest import NET, set_approval
from tests.helpers import ADMIN, Repo, live, release_dirs, running_server, unique
from tests.pipeline.test_agent_confirmation import server  # noqa: F401  (a fixture)
from tests.pipeline.test_pull import Pollers, _config, pollers  # noqa: F401  (a fixture)

pytestmark = pytest.mark.fleet
LINK = f"{NET}.77"  # the forwarder's address, this test run's own (its port: a free one)


def _worker(settings) -> subprocess.Popen[bytes]:
    exe = shutil.which("ferryman", path=os.path.dirname(sys.executable)) or "ferryman"
    env = {
        **os.environ,
        "FERRYMAN_HOME": str(settings.home),
        "FERRYMAN_LOCK_LEASE": "5",
        "FERRYMAN_WORKER_POLL": "0.2",
    }
    return subprocess.Popen(
        [exe, "worker"], env=env, stderr=subprocess.DEVNULL, start_new_session=True
    )


def _until(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class Forward(http.server.BaseHTTPRequestHandler):
    """The network between one host and the server: a plain forwarder we can cut."""

    upstream = ""

    def _forward(self, method: str) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() != "content-length"}
        reply = httpx.request(
            method, self.upstream + self.path, headers=headers, content=body, timeout=60
        )
        self.send_response(reply.status_code)
        for key, value in reply.headers.items():
            if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(reply.content)))
        self.end_headers()
        self.wfile.write(reply.content)

    def do_GET(self) -> None:
        self._forward("GET")

    def do_POST(self) -> None:
        self._forward("POST")

    def log_message(self, *args: object) -> None:
        return


class Link:
    """A forwarder that can be cut (``down``) and mended (``up``) on the same address: its
    port is the free one the kernel gives at the first ``up`` (never a fixed one, which two
    runs on one machine would both want), and every later ``up`` binds it again, on this
    run's own loopback address (``FERRYMAN_TEST_NET``)."""

    def __init__(self, upstream: str) -> None:
        self.handler = type("F", (Forward,), {"upstream": upstream})
        self.httpd: http.server.ThreadingHTTPServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        assert self.port, "the link was never up"
        return f"http://{LINK}:{self.port}"

    def up(self) -> None:
        self.httpd = http.server.ThreadingHTTPServer((LINK, self.port), self.handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


@pytest.fixture
def api(settings) -> Iterator[tuple[str, object]]:
    """The API alone: deploys are run by the worker processes each test starts and kills."""
    db = prepare_home(settings)
    set_approval(db, "production", False)
    try:
        with running_server(settings.home, {"FERRYMAN_EMBEDDED_WORKER": "0"}) as url:
            yield url, db
    finally:
        db.dispose()


SLOW_START = 'echo "started in $(basename "$PWD") on $HOST" >> /srv/agent/started\n' + (
    "if [ -f /srv/agent/slow ]; then rm -f /srv/agent/slow; sleep 10; fi\n"
)


def _fleet(api, pollers, git_host, targets, tmp_path, name, cut: bool):  # noqa: F811
    url, db = api
    hosts = targets[:3]
    repo = Repo(git_host, tmp_path, unique(name))
    repo.commit({"index.html": "v1\n", "status.txt": "fine\n"}, tag="v1")
    repo.commit({"index.html": "v2\n", "status.txt": "fine\n"}, tag="v2")
    config = _config(repo.name, repo.url, hosts, tasks={"post_release": SLOW_START})
    projects.apply_project(db, ADMIN, parse_project(config))
    link = Link(url)
    link.up()
    for n, host in enumerate(hosts):
        token = agents.register(db, SYSTEM, "default", host.address)["token"]
        through = link.url if (cut and n == 2) else url
        pollers.start(host, through, token)
    return db, hosts, repo, link


def _project(db: Database, deploy_id: int) -> int:
    from ferryman.db.models import Deploy

    with db.read() as s:
        row = s.get(Deploy, deploy_id)
        assert row is not None, f"no deploy #{deploy_id}"
        return row.project_id


def _wait_end(db, deploy_id: int, seconds: float = 120) -> dict:
    shown: dict = {}

    def ended() -> bool:
        nonlocal shown
        shown = deploy_views.get(db, deploy_id)
        return shown["status"] in ("success", "failed", "cancelled")

    _until(ended, seconds, f"deploy #{deploy_id} to end")
    return shown


def _kill_mid_script(db, settings, hosts, repo) -> tuple[dict, dict, int]:
    """v1 everywhere; v2 until the slow host (hosts[2]) has switched and sits in its
    post_release; then the worker is SIGKILLed and another takes the deploy over."""
    first_worker = _worker(settings)
    try:
        first = _wait_end(db, deploys.request_deploy(db, ADMIN, repo.name, "production", "v1").id)
        assert first["status"] == "success", first["error"]
        v1 = {h.address: live(h, repo.name) for h in hosts}
        slow = hosts[2]
        slow.path("/srv/agent/slow").write_text("")
        second = deploys.request_deploy(db, ADMIN, repo.name, "production", "v2")
        _until(lambda: live(slow, repo.name) != v1[slow.address], 90, "the slow host's switch")
        os.killpg(first_worker.pid, signal.SIGKILL)  # mid-deploy, mid-script on the host
        first_worker.wait(10)
    finally:
        if first_worker.poll() is None:
            os.killpg(first_worker.pid, signal.SIGKILL)
            first_worker.wait(10)
    return v1, first, second.id


def test_a_worker_killed_while_a_pull_host_is_mid_script_leaves_one_release_and_says_so(
    api,
    settings,
    pollers,  # noqa: F811
    git_host,
    targets,
    tmp_path,
):
    db, hosts, repo, link = _fleet(api, pollers, git_host, targets, tmp_path, "rv16k", False)
    try:
        v1, _first, doomed = _kill_mid_script(db, settings, hosts, repo)
        rescuer = _worker(settings)
        try:
            result = _wait_end(db, doomed, 120)
            slow = hosts[2]
            _until(
                lambda: all(live(h, repo.name) == v1[h.address] for h in hosts),
                60,
                "every host back on v1",
            )
            time.sleep(12)  # the slow host's script has long ended; nothing moves again
        finally:
            _stop(rescuer)
    finally:
        link.down()
    assert result["status"] == "failed" and result["error"]["code"] == "worker_lost", result
    assert {h.address: live(h, repo.name) for h in hosts} == v1
    recorded = deploy_views.live_releases(db, _project(db, doomed), "production")
    assert recorded == v1, "the record says what the hosts serve"
    tasks = agents.tasks_of(db, doomed)
    assert tasks[slow.address].status == "cancelled"
    assert "the server did not confirm the deploy" in slow.path("/srv/agent/poll.log").read_text()
    started = slow.path("/srv/agent/started").read_text().split("\n")
    assert started[-2].startswith(f"started in {v1[slow.address]}"), started  # restarted there
    good = deploy_views.good_releases(db, _project(db, doomed), "production")
    assert result["release"] not in good.get(slow.address, set())
    # no partial dirs anywhere; the slow host keeps the v2 dir it switched back from
    for host in hosts:
        assert not [d for d in release_dirs(host, repo.name) if "ferryman-partial" in d]


def test_a_mid_script_host_cut_off_from_the_server_is_still_brought_back_after_recovery(
    api,
    settings,
    pollers,  # noqa: F811
    git_host,
    targets,
    tmp_path,
):
    db, hosts, repo, link = _fleet(api, pollers, git_host, targets, tmp_path, "rv16c", True)
    slow = hosts[2]
    try:
        first_worker = _worker(settings)
        try:
            first = _wait_end(
                db, deploys.request_deploy(db, ADMIN, repo.name, "production", "v1").id
            )
            assert first["status"] == "success", first["error"]
            v1 = {h.address: live(h, repo.name) for h in hosts}
            slow.path("/srv/agent/slow").write_text("")
            doomed = deploys.request_deploy(db, ADMIN, repo.name, "production", "v2").id
            _until(lambda: live(slow, repo.name) != v1[slow.address], 90, "the slow switch")
            link.down()  # the slow host loses the server while its post_release runs
            os.killpg(first_worker.pid, signal.SIGKILL)
            first_worker.wait(10)
        finally:
            if first_worker.poll() is None:
                os.killpg(first_worker.pid, signal.SIGKILL)
                first_worker.wait(10)
        rescuer = _worker(settings)
        try:
            result = _wait_end(db, doomed, 120)
            time.sleep(12)  # the slow host's script ends (its reports unanswered)
            link.up()  # the network comes back: the host polls the server again
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and live(slow, repo.name) != v1[slow.address]:
                time.sleep(0.5)
        finally:
            _stop(rescuer)
    finally:
        link.down()
    assert result["status"] == "failed", result
    recorded = deploy_views.live_releases(db, _project(db, doomed), "production")
    assert recorded == v1
    assert "could not report" in slow.path("/srv/agent/poll.log").read_text()
    assert {h.address: live(h, repo.name) for h in hosts} == v1, (
        f"{slow.address} serves {live(slow, repo.name)}, recorded on {recorded[slow.address]}"
    )


# --- the switch back by the generated script (a fake server answers its reports) ------------


def test_a_host_switching_back_restarts_its_old_release_with_that_release_s_variables(
    tmp_path,
    server,  # noqa: F811
):
    import hashlib

    from ferryman.commands import agent_script
    from tests.pipeline.test_agent_confirmation import _artifact

    url, answers = server
    answers.status["do-deploy"] = 409  # the deploy ended while the host switched
    releases, webroot = tmp_path / "releases", tmp_path / "www"
    (releases / "r1").mkdir(parents=True)
    (releases / "r1" / ".ferryman-release").write_text("r1\n")
    os.symlink(releases / "r1", webroot)
    (tmp_path / "token").write_text("t")
    answers.artifact = _artifact()
    started = tmp_path / "started"
    plan = agent_script.ScriptPlan(
        server=url,
        host="127.0.140.61:22",
        task_id=9,
        action="deploy",
        release="r2",
        webroot=str(webroot),
        releases=str(releases),
        shared_dir=str(tmp_path / "shared"),
        sha256=hashlib.sha256(answers.artifact).hexdigest(),
        start=f'echo "$(basename "$PWD") $VERSION $(basename "$RELEASE")" >> {started}',
        variables={"VERSION": "r2", "RELEASE": str(releases / "r2")},
        task_timeout=20,
        download_timeout=20,
    )
    script = tmp_path / "run.sh"
    script.write_text(agent_script.deploy_script(plan))
    env = {**os.environ, "FERRYMAN_TOKEN_FILE": str(tmp_path / "token")}
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert done.returncode == agent_script.EXIT_UNCONFIRMED, done.stderr
    assert os.path.basename(os.readlink(webroot)) == "r1"
    lines = started.read_text().splitlines()
    assert lines[0] == "r2 r2 r2"
    assert lines[-1] == "r1 r1 r1", lines


# --- a fenced write that finds the deploy taken over, in the middle of the switch ------------


def test_a_run_whose_fenced_write_finds_it_taken_over_does_not_undo_on_the_hosts(
    db, settings, git_host, targets, tmp_path, monkeypatch
):
    import asyncio

    from sqlalchemy import update

    from ferryman.config.settings import load_settings
    from ferryman.db.models import Deploy
    from ferryman.jobs.deploy_job import run_deploy
    from ferryman.services import deploy_records, queue
    from tests.helpers import apply, deploy, project_config

    repo = Repo(git_host, tmp_path, unique("rv16own"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    repo.commit({"index.html": "v2\n"}, tag="v2")
    apply(db, project_config(repo.name, repo.url, targets))
    first = deploy(db, settings, repo.name, "v1")
    assert first["status"] == "success", first["error"]
    v1 = first["release"]
    doomed = deploys.request_deploy(db, ADMIN, repo.name, "production", "v2")
    real_set_live = deploy_records.set_live

    def taken_over_meanwhile(database, *args, **kwargs):
        # the lease ran out by the database's clock (a clock step, a stall between two
        # flushes): another worker took the deploy over just before this write
        with database.transaction() as s:
            s.execute(
                update(Deploy)
                .where(Deploy.id == doomed.id)
                .values(worker="rescuer:1:x", claimed_by="rescuer:1:x~000000000000")
            )
        return real_set_live(database, *args, **kwargs)

    monkeypatch.setattr(deploy_records, "set_live", taken_over_meanwhile)
    slow = load_settings(
        {
            "FERRYMAN_HOME": str(settings.home),
            "FERRYMAN_LOCK_LEASE": "300",
            "FERRYMAN_SANDBOX_UID_BASE": str(settings.sandbox_uid_base),
        }
    )
    stale = queue.claim(db, "stale-worker")
    assert stale is not None and stale.id == doomed.id
    status = asyncio.run(run_deploy(db, slow, doomed.id, stale.holder))
    assert status == "lost"
    new = {live(h, repo.name) for h in targets}
    assert v1 not in new, "the stale run switched the hosts back under the new owner"


# --- one machine, two pull projects of one space ---------------------------------------------


def test_a_host_with_two_projects_due_at_once_deploys_both(
    api,
    settings,
    pollers,  # noqa: F811
    git_host,
    targets,
    tmp_path,
):
    url, db = api
    host = targets[0]
    names = []
    for prefix in ("rv16a", "rv16b"):
        (tmp_path / prefix).mkdir()
        repo = Repo(git_host, tmp_path / prefix, unique(prefix))
        repo.commit({"index.html": f"{prefix}\n", "status.txt": "fine\n"}, tag="v1")
        config = _config(repo.name, repo.url, [host], pull={"unreachable_after": "15s"})
        projects.apply_project(db, ADMIN, parse_project(config))
        names.append(repo.name)
    token = agents.register(db, SYSTEM, "default", host.address)["token"]
    worker = _worker(settings)
    try:
        ids = [deploys.request_deploy(db, ADMIN, n, "production", "v1").id for n in names]

        def both_due() -> bool:
            found = [agents.tasks_of(db, i).get(host.address) for i in ids]
            return all(t is not None and t.status == "due" for t in found)

        _until(both_due, 90, "both deploys due on the host")
        # a fresh agent state: an ETag left by an earlier test's server (whose task ids
        # restarted at 1) would make this one's first poll a 304 too
        shutil.rmtree(host.path("/srv/agent/state"), ignore_errors=True)
        time.sleep(1.5)  # past the server's index refresh: its first poll sees both
        pollers.start(host, url, token)  # the host comes up (or its timer fires) now
        results = [_wait_end(db, i, 120) for i in ids]
    finally:
        _stop(worker)
    assert [r["status"] for r in results] == ["success", "success"], [
        (r["status"], r["error"]) for r in results
    ]
    for name in names:
        assert live(host, name) is not None


class _DropOnce(dict):
    """The fake server's answers: the first go-ahead's answer is lost, later ones arrive."""

    def get(self, phase, default=None):
        if phase == "pre-deploy" and not self.get_dropped:
            self.get_dropped = True
            return 0
        return super().get(phase, default)

    get_dropped = False


def test_a_host_whose_go_ahead_answer_was_lost_tells_the_server_what_it_did(
    tmp_path,
    server,  # noqa: F811
):
    import hashlib

    from ferryman.commands import agent_script
    from tests.pipeline.test_agent_confirmation import _artifact

    url, answers = server
    answers.status = _DropOnce()
    releases, webroot = tmp_path / "releases", tmp_path / "www"
    (releases / "r1").mkdir(parents=True)
    (releases / "r1" / ".ferryman-release").write_text("r1\n")
    os.symlink(releases / "r1", webroot)
    (tmp_path / "token").write_text("t")
    answers.artifact = _artifact()
    plan = agent_script.ScriptPlan(
        server=url,
        host="127.0.140.62:22",
        task_id=11,
        action="deploy",
        release="r2",
        webroot=str(webroot),
        releases=str(releases),
        shared_dir=str(tmp_path / "shared"),
        sha256=hashlib.sha256(answers.artifact).hexdigest(),
        task_timeout=20,
        download_timeout=20,
    )
    script = tmp_path / "run.sh"
    script.write_text(agent_script.deploy_script(plan))
    env = {**os.environ, "FERRYMAN_TOKEN_FILE": str(tmp_path / "token")}
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert os.path.basename(os.readlink(webroot)) in ("r1", "r2")
    # it retried its go-ahead (and went on), or at least said it stopped: either way the
    # server hears from it again instead of waiting for it for three quarters of an hour
    assert len(answers.heard) > 1, (done.returncode, answers.heard, done.stderr)


def test_a_first_deploy_refused_after_its_switch_leaves_no_webroot_link(
    tmp_path,
    server,  # noqa: F811
):
    """No previous release: the host goes back to having no site (as push mode's revert
    removes the link). The new release's dir stays on disk, unrecorded."""
    import hashlib

    from ferryman.commands import agent_script
    from tests.pipeline.test_agent_confirmation import _artifact

    url, answers = server
    answers.status["post-deploy"] = 409
    releases, webroot = tmp_path / "releases", tmp_path / "www"
    (tmp_path / "token").write_text("t")
    answers.artifact = _artifact()
    started = tmp_path / "started"
    plan = agent_script.ScriptPlan(
        server=url,
        host="127.0.140.63:22",
        task_id=12,
        action="deploy",
        release="r2",
        webroot=str(webroot),
        releases=str(releases),
        shared_dir=str(tmp_path / "shared"),
        sha256=hashlib.sha256(answers.artifact).hexdigest(),
        start=f'echo "$(basename "$PWD")" >> {started}',
        task_timeout=20,
        download_timeout=20,
    )
    script = tmp_path / "run.sh"
    script.write_text(agent_script.deploy_script(plan))
    env = {**os.environ, "FERRYMAN_TOKEN_FILE": str(tmp_path / "token")}
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert done.returncode == agent_script.EXIT_UNCONFIRMED, done.stderr
    assert "switching back to nothing" in done.stderr
    assert not webroot.exists() and not webroot.is_symlink()
    assert sorted(os.listdir(releases)) == ["r2"]  # left behind: nothing records it
    assert started.read_text().split() == ["r2"]  # started once; nothing restarted
    assert answers.heard == ["pre-deploy", "do-deploy", "post-deploy"]
