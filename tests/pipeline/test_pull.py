"""Pull mode on the fleet: every host, in its own mount namespace, runs the generated poller
every second against a real ``ferryman serve`` on loopback, and deploys itself with the
generated script — exactly as generated. A host's token reads only that host's deploys."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from ferryman.bootstrap import prepare_home
from ferryman.commands import agent_script
from ferryman.config.project import parse_project
from ferryman.services import agents, deploy_views, deploys, projects
from ferryman.services.audit import SYSTEM
from ferryman.testing.fleet import FleetHost
from tests.conftest import set_approval
from tests.helpers import ADMIN, Repo, live, read_live, running_server, unique

pytestmark = pytest.mark.fleet


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(settings) -> Iterator[tuple[str, object]]:
    db = prepare_home(settings)
    set_approval(db, "production", False)
    try:
        with running_server(settings.home) as url:
            yield url, db
    finally:
        db.dispose()


class Pollers:
    """One loop per host: the generated poller, run inside the host's mount namespace."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, host: FleetHost, server: str, token: str) -> None:
        agent = host.path("/srv/agent")
        agent.mkdir(parents=True, exist_ok=True)
        token_file = agent / "token"
        token_file.write_text(token)
        token_file.chmod(0o600)
        (agent / "poll.sh").write_text(
            agent_script.poller(server, host.address, token_file="/srv/agent/token")
        )
        inside = (
            "FERRYMAN_STATE=/srv/agent/state bash /srv/agent/poll.sh >> /srv/agent/poll.log 2>&1"
        )
        loop = f"while :; do nsenter -t {host.pid()} -m -- bash -c '{inside}'; sleep 1; done"
        self.procs.append(
            subprocess.Popen(
                ["bash", "-c", loop],
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    def stop(self) -> None:
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            proc.wait(10)


@pytest.fixture
def pollers() -> Iterator[Pollers]:
    running = Pollers()
    yield running
    running.stop()


class Tamper(http.server.BaseHTTPRequestHandler):
    """A proxy in front of the server that flips a byte of every artifact it passes on."""

    upstream = ""

    def _forward(self, method: str) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("content-length",)}
        reply = httpx.request(
            method, self.upstream + self.path, headers=headers, content=body, timeout=30
        )
        data = reply.content
        if "/artifact/" in self.path and data:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        self.send_response(reply.status_code)
        for key, value in reply.headers.items():
            if key.lower() not in (
                "content-length",
                "transfer-encoding",
                "connection",
                "content-encoding",
            ):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._forward("GET")

    def do_POST(self) -> None:
        self._forward("POST")

    def log_message(self, *args: object) -> None:
        return


def _wait(db, deploy_id: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = deploy_views.get(db, deploy_id)
        if shown["status"] in ("success", "failed", "cancelled"):
            return shown
        time.sleep(0.5)
    raise AssertionError(f"deploy #{deploy_id} did not finish: {deploy_views.get(db, deploy_id)}")


def _config(name: str, repo_url: str, hosts: list[FleetHost], **env: object) -> dict:
    base = {
        "hosts": [h.address for h in hosts],
        "user": "root",
        "mode": "pull",
        "webroot": f"/srv/www/{name}",
        "releases": f"/srv/releases/{name}",
        "pull": {"unreachable_after": "60s"},
        "tasks": {"post_release": 'echo "started $VERSION on $HOST"\n'},
        "health_check": [
            {"command": '! grep -qx "sick $HOST" "$WEBROOT/status.txt"', "retries": 1}
        ],
        **env,
    }
    return {"project": name, "repo": repo_url, "environments": {"production": base}}


def test_pull_hosts_deploy_themselves_roll_back_on_failed_checks_and_refuse_tampering(
    server, pollers, git_host, targets, tmp_path
):
    url, db = server
    repo = Repo(git_host, tmp_path, unique("pull"))
    repo.commit({"index.html": "v1\n", "status.txt": "fine\n"}, tag="v1")
    config = _config(repo.name, repo.url, targets)
    projects.apply_project(db, ADMIN, parse_project(config))
    tokens = {
        h.address: agents.register(db, SYSTEM, "default", h.address)["token"] for h in targets
    }

    # a token is its host's only
    a, b = targets[0].address, targets[1].address
    headers = {"Authorization": f"Bearer {tokens[a]}"}
    assert httpx.get(f"{url}/api/v1/agent/{a}", headers=headers).status_code == 204
    for path in (f"/api/v1/agent/{b}", f"/api/v1/agent/{b}/deploy"):
        assert httpx.get(url + path, headers=headers).status_code == 403
    forged = httpx.post(
        f"{url}/api/v1/agent/{b}/report",
        headers=headers,
        data={"task": "1", "phase": "x", "exit_code": "0"},
    )
    assert forged.status_code == 403
    assert (
        httpx.get(f"{url}/api/v1/agent/{a}", headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )

    for host in targets:
        pollers.start(host, url, tokens[host.address])

    # v1, then v2: every host converges, phase by phase in the console
    first = _wait(db, deploys.request_deploy(db, ADMIN, repo.name, "production", "v1").id)
    assert first["status"] == "success", first["error"]
    assert {read_live(h, repo.name, "index.html") for h in targets} == {"v1\n"}
    repo.commit({"index.html": "v2\n"}, tag="v2")
    second = _wait(db, deploys.request_deploy(db, ADMIN, repo.name, "production", "v2").id)
    assert second["status"] == "success", second["error"]
    assert {read_live(h, repo.name, "index.html") for h in targets} == {"v2\n"}
    assert {h["status"] for h in second["hosts"]} == {"success"}
    lines = deploy_views.logs_after(db, second["id"], 0, 5000)
    for host in targets:
        phases = [x["stage"] for x in lines if x["host"] == host.address and not x["stream"]]
        assert phases == ["pre-deploy", "do-deploy", "post-deploy"], (host.address, phases)
    assert any(f"started {second['release']} on {a}" in x["text"] for x in lines)
    v2 = {h.address: live(h, repo.name) for h in targets}

    # v3 makes one host's check fail: it rolls itself back; with max_failed 0 so do the rest
    sick = targets[2].address
    repo.commit({"index.html": "v3\n", "status.txt": f"sick {sick}\n"}, tag="v3")
    third = _wait(db, deploys.request_deploy(db, ADMIN, repo.name, "production", "v3").id)
    assert third["status"] == "failed"
    assert third["error"]["details"]["host"] == sick
    by_host = {h["host"]: h["status"] for h in third["hosts"]}
    assert by_host[sick] == "rolled_back"
    assert {h.address: live(h, repo.name) for h in targets} == v2

    # an artifact changed on the way is refused: nothing switched on that host
    proxy_port = _free_port()
    handler = type("T", (Tamper,), {"upstream": url})
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", proxy_port), handler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    victim = targets[4]
    try:
        os.killpg(pollers.procs[4].pid, signal.SIGTERM)  # its loop now goes through the proxy
        pollers.start(victim, f"http://127.0.0.1:{proxy_port}", tokens[victim.address])
        config["environments"]["production"]["strategy"] = {"max_failed": 1}
        projects.apply_project(db, ADMIN, parse_project(config))
        repo.commit({"index.html": "v4\n", "status.txt": "fine\n"}, tag="v4")
        fourth = _wait(db, deploys.request_deploy(db, ADMIN, repo.name, "production", "v4").id)
    finally:
        proxy.shutdown()
        proxy.server_close()  # its listening socket, too
    assert fourth["status"] == "success", fourth["error"]  # within max_failed
    by_host = {h["host"]: h["status"] for h in fourth["hosts"]}
    assert by_host[victim.address] == "failed"
    assert live(victim, repo.name) == v2[victim.address]
    refused = [
        x["text"]
        for x in deploy_views.logs_after(db, fourth["id"], 0, 5000)
        if x["host"] == victim.address
    ]
    assert any("sha256 mismatch" in t for t in refused), refused
    assert not [
        p
        for p in victim.path(f"/srv/releases/{repo.name}").iterdir()
        if "ferryman-partial" in p.name
    ]
    assert {read_live(h, repo.name, "index.html") for h in targets[:4]} == {"v4\n"}


def test_a_pull_deploy_whose_worker_died_tells_the_switched_hosts_to_roll_back(
    settings, pollers, git_host, targets, tmp_path
):
    from datetime import timedelta

    from sqlalchemy import update

    from ferryman.db.models import Deploy, utcnow

    db = prepare_home(settings)
    set_approval(db, "production", False)
    try:
        with running_server(settings.home, {"FERRYMAN_LOCK_LEASE": "6"}) as url:
            repo = Repo(git_host, tmp_path, unique("pullrec"))
            repo.commit({"index.html": "v1\n", "status.txt": "fine\n"}, tag="v1")
            repo.commit({"index.html": "v2\n", "status.txt": "fine\n"}, tag="v2")
            projects.apply_project(db, ADMIN, parse_project(_config(repo.name, repo.url, targets)))
            for host in targets:
                token = agents.register(db, SYSTEM, "default", host.address)["token"]
                pollers.start(host, url, token)
            first = _wait(db, deploys.request_deploy(db, ADMIN, repo.name, "production", "v1").id)
            assert first["status"] == "success", first["error"]
            v1 = {h.address: live(h, repo.name) for h in targets}
            second = _wait(db, deploys.request_deploy(db, ADMIN, repo.name, "production", "v2").id)
            assert second["status"] == "success", second["error"]
            # the state a worker killed after the hosts switched leaves: running, lease gone
            with db.transaction() as s:
                s.execute(
                    update(Deploy)
                    .where(Deploy.id == second["id"])
                    .values(
                        status="running",
                        worker="gone:1:dead",
                        lease_expires_at=utcnow() - timedelta(seconds=1),
                        finished_at=None,
                        stages=[{"name": "hosts", "status": "running", "hosts": {}}],
                    )
                )
            result = _wait(db, second["id"])
    finally:
        db.dispose()

    assert result["status"] == "failed" and result["error"]["code"] == "worker_lost"
    assert "told to roll back" in result["error"]["message"]
    assert {h.address: live(h, repo.name) for h in targets} == v1  # one release everywhere


def test_a_host_still_running_a_cancelled_pull_deploy_switches_back_by_itself(
    server, pollers, git_host, targets, tmp_path
):
    url, db = server
    hosts = targets[:3]
    slow = hosts[2]
    repo = Repo(git_host, tmp_path, unique("pullcancel"))
    repo.commit({"index.html": "v1\n", "status.txt": "fine\n"}, tag="v1")
    # the slow host's post_release holds until the test lets it go (bounded by task_timeout)
    start = 'echo "started $VERSION on $HOST"; while [ -f /srv/agent/slow ]; do sleep 0.2; done\n'
    config = _config(repo.name, repo.url, hosts, tasks={"post_release": start})
    projects.apply_project(db, ADMIN, parse_project(config))
    for host in hosts:
        pollers.start(host, url, agents.register(db, SYSTEM, "default", host.address)["token"])
    first = _wait(db, deploys.request_deploy(db, ADMIN, repo.name, "production", "v1").id)
    assert first["status"] == "success", first["error"]
    v1 = {h.address: live(h, repo.name) for h in hosts}

    # v2: the slow host switches, then its post_release holds; meanwhile it is cancelled
    slow.path("/srv/agent/slow").write_text("")
    repo.commit({"index.html": "v2\n", "status.txt": "fine\n"}, tag="v2")
    second = deploys.request_deploy(db, ADMIN, repo.name, "production", "v2")
    deadline = time.monotonic() + 60
    while live(slow, repo.name) == v1[slow.address] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert read_live(slow, repo.name, "index.html") == "v2\n", "the slow host never switched"
    deploys.request_cancel(db, ADMIN, second.id, "changed our minds")
    result = _wait(db, second.id)
    assert result["status"] == "cancelled", result
    slow.path("/srv/agent/slow").unlink()  # its script goes on, late

    # the slow host's next report is refused: it goes back by itself; the others are told to
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(live(h, repo.name) != v1[h.address] for h in hosts):
        time.sleep(0.5)
    assert {h.address: live(h, repo.name) for h in hosts} == v1
    assert "the server did not confirm the deploy" in slow.path("/srv/agent/poll.log").read_text()
    assert agents.tasks_of(db, second.id)[slow.address].status == "cancelled"
    recorded = deploy_views.live_releases(db, second.project_id, "production")
    assert recorded == v1, "the record says what the hosts serve"
