"""Gray releases on the real fleet: a canary, batches, a manual pause continued by a person,
health checks against small HTTP servers listening on each host's own address (healthy unless
the release they serve says otherwise), automatic rollback, the load balancer hooks in order,
and the emergency rollback."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from ferryman.db.session import Database
from ferryman.errors import Conflict
from ferryman.services import deploy_views, deploys, rollouts
from ferryman.testing.fleet import FleetHost
from tests.helpers import (
    ADMIN,
    Repo,
    apply,
    deploy,
    finish,
    live,
    project_config,
    read_live,
    unique,
)

pytestmark = pytest.mark.fleet
PORT = 18080


class _Health(http.server.BaseHTTPRequestHandler):
    """200, unless the host's live release has ``health.txt`` naming this host or ``all``, or
    the test's outage file names it."""

    host: FleetHost
    project: str
    outage: Path | None = None

    def do_GET(self) -> None:
        name = live(self.host, self.project)
        verdict = self.outage.read_text() if self.outage and self.outage.exists() else ""
        if name:
            marker = self.host.path(f"/srv/releases/{self.project}/{name}/health.txt")
            verdict += marker.read_text() if marker.exists() else ""
        sick = "all" in verdict or self.host.address in verdict.split()
        self.send_response(500 if sick else 200)
        self.end_headers()
        self.wfile.write(b"sick" if sick else b"ok")

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def health_servers(targets) -> Iterator[Callable[..., None]]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(project: str, hosts: list[FleetHost], outage: Path | None = None) -> None:
        for host in hosts:
            handler = type("H", (_Health,), {"host": host, "project": project, "outage": outage})
            server = http.server.ThreadingHTTPServer((host.address, PORT), handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            servers.append(server)

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _setup(git_host, hosts, tmp_path: Path, **strategy: object) -> tuple[Repo, dict]:
    repo = Repo(git_host, tmp_path, unique("gray"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    config = project_config(repo.name, repo.url, hosts)
    apply(db_holder["db"], config)  # v1 everywhere, the plain way
    env = config["environments"]["production"]
    env["strategy"] = {
        "lb_out": 'echo "out $HOST"',  # sandboxed on the deploy host: it prints, we read
        "lb_in": 'echo "in $HOST"',
        **strategy,
    }
    env["health_check"] = [
        {
            "http": f"http://{{HOST}}:{PORT}/healthz",
            "retries": 2,
            "interval": "0.2s",
            "timeout": "2s",
        }
    ]
    return repo, config


db_holder: dict[str, Database] = {}


@pytest.fixture(autouse=True)
def _db(db):
    db_holder["db"] = db
    yield
    db_holder.clear()


def _lb_calls() -> list[tuple[str, str]]:
    """(out|in, host) of every lb_out/lb_in run so far, in order, from the deploys' logs."""
    from sqlalchemy import select

    from ferryman.db.models import LogLine

    with db_holder["db"].read() as s:
        rows = s.scalars(
            select(LogLine)
            .where(LogLine.stage.in_(["lb_out", "lb_in"]), LogLine.stream == "stdout")
            .order_by(LogLine.id)
        ).all()
        calls: list[tuple[str, str]] = []
        for row in rows:
            words = row.text.split()  # "out HOST" or "in HOST": what lb_out and lb_in print
            assert len(words) == 2, f"not a load-balancer call: {row.text!r}"
            calls.append((words[0], words[1]))
        return calls


def _stage(deploy: dict, name: str) -> dict:
    return next(s for s in deploy["stages"] if s["name"].startswith(name))


def test_a_canary_pauses_until_someone_continues_then_batches_follow_in_turn(
    db, settings, git_host, targets, tmp_path, health_servers
):
    hosts = targets[:4]
    repo, config = _setup(
        git_host, hosts, tmp_path, canary=1, batches="50%", pause="manual", between_batches="1s"
    )
    assert deploy(db, settings, repo.name, "v1")["status"] == "success"
    apply(db, config)
    health_servers(repo.name, hosts)
    repo.commit({"index.html": "v2\n"}, tag="v2")
    requested = deploys.request_deploy(db, ADMIN, repo.name, "production", "v2")
    shown = finish(db, settings, requested.id)
    assert shown["status"] == "paused"
    assert shown["rollout"]["batches"] == [
        [hosts[0].address],
        [h.address for h in hosts[1:3]],
        [hosts[3].address],
    ]
    assert shown["rollout"]["next_batch"] == 1 and shown["rollout"]["paused_since"]
    assert read_live(hosts[0], repo.name, "index.html") == "v2\n"
    assert {read_live(h, repo.name, "index.html") for h in hosts[1:]} == {"v1\n"}
    with pytest.raises(Conflict, match="busy"):  # the paused rollout still holds the env
        deploys.request_deploy(db, ADMIN, repo.name, "production", "v1")

    before_pause = [stage["name"] for stage in shown["stages"]]
    assert {"checkout", "transfer"} <= set(before_pause), before_pause
    assert any(name.startswith("batch 1/3") for name in before_pause), before_pause
    rollouts.request(db, ADMIN, requested.id, "continue")
    done = finish(db, settings, requested.id)  # any worker: this one resumes it
    assert done["status"] == "success", done["error"]
    names = [stage["name"] for stage in done["stages"]]
    assert names[: len(before_pause)] == before_pause, names  # nothing lost on resuming
    assert {"batch 2/3", "batch 3/3"} <= set(names), names
    assert {read_live(h, repo.name, "index.html") for h in hosts} == {"v2\n"}
    assert sorted(done["rollout"]["healthy"]) == sorted(h.address for h in hosts)
    second, third = _stage(done, "batch 2/3"), _stage(done, "batch 3/3")
    ends = datetime.fromisoformat(second["started_at"]).timestamp() + second["duration"]
    assert datetime.fromisoformat(third["started_at"]).timestamp() >= ends + 0.9  # in turn
    calls = _lb_calls()
    for host in hosts:
        mine = [what for what, who in calls if who == host.address]
        assert mine == ["out", "in"], (host.address, calls)
    order = [who for what, who in calls if what == "out"]
    assert order[0] == hosts[0].address and order[-1] == hosts[3].address
    audit = deploy_views.get(db, requested.id)
    assert audit["status"] == "success"


def test_a_sick_canary_aborts_the_rollout_and_nothing_else_is_switched(
    db, settings, git_host, targets, tmp_path, health_servers
):
    hosts = targets[:3]
    repo, config = _setup(git_host, hosts, tmp_path, canary=[hosts[1].address], batches=1)
    assert deploy(db, settings, repo.name, "v1")["status"] == "success"
    apply(db, config)
    health_servers(repo.name, hosts)
    before = {h.address: live(h, repo.name) for h in hosts}
    repo.commit({"index.html": "v2\n", "health.txt": "all\n"}, tag="v2")
    failed = deploy(db, settings, repo.name, "v2")
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "rollout_failed"
    assert failed["error"]["details"]["host"] == hosts[1].address
    assert failed["error"]["details"]["stage"] == "health_check"
    assert f"http://{hosts[1].address}:{PORT}/healthz" in failed["error"]["details"]["command"]
    assert {h.address: live(h, repo.name) for h in hosts} == before
    calls = _lb_calls()
    assert {who for _, who in calls} == {hosts[1].address}  # the others never left the LB
    assert [what for what, _ in calls] == ["out", "in"]
    assert rollouts.bad_releases(db, failed_project_id(db, repo.name), "production") == {
        failed["release"]
    }


def failed_project_id(db, name: str) -> int:
    from ferryman.services import projects

    with db.read() as s:
        return projects.find_project(s, ADMIN, name, "project.read").id


def test_a_host_failing_in_the_second_batch_puts_every_switched_host_back(
    db, settings, git_host, targets, tmp_path, health_servers
):
    hosts = targets[:4]
    repo, config = _setup(
        git_host, hosts, tmp_path, canary=1, batches=[2, 4], pause="none", max_failed=0
    )
    assert deploy(db, settings, repo.name, "v1")["status"] == "success"
    apply(db, config)
    health_servers(repo.name, hosts)
    first = {h.address: live(h, repo.name) for h in hosts}
    sick = hosts[1].address  # batches: [h0] (canary), [h1] (up to 2 hosts), [h2, h3]
    repo.commit({"index.html": "v2\n", "health.txt": f"{sick}\n"}, tag="v2")
    failed = deploy(db, settings, repo.name, "v2")
    assert failed["status"] == "failed"
    details = failed["error"]["details"]
    assert details["host"] == sick and details["stage"] == "health_check"
    assert {h.address: live(h, repo.name) for h in hosts} == first  # all back on v1
    assert failed["rollout"]["state"] == "aborted"
    reached = {w for _, w in _lb_calls()}
    assert reached == {hosts[0].address, hosts[1].address}  # batch 3 never started
    # a rollback never goes to the bad release; the previous one is still v1
    assert rollouts.bad_releases(db, failed_project_id(db, repo.name), "production") == {
        failed["release"]
    }


def test_halt_leaves_the_hosts_where_the_rollout_stopped(
    db, settings, git_host, targets, tmp_path, health_servers
):
    hosts = targets[:3]
    repo, config = _setup(
        git_host,
        hosts,
        tmp_path,
        canary=1,
        batches=1,
        pause="none",
        on_failure="halt",
        max_failed=0,
    )
    assert deploy(db, settings, repo.name, "v1")["status"] == "success"
    apply(db, config)
    health_servers(repo.name, hosts)
    repo.commit({"index.html": "v2\n", "health.txt": f"{hosts[1].address}\n"}, tag="v2")
    failed = deploy(db, settings, repo.name, "v2")
    assert failed["status"] == "failed" and failed["rollout"]["state"] == "halted"
    assert read_live(hosts[0], repo.name, "index.html") == "v2\n"  # healthy canary stays
    assert read_live(hosts[1], repo.name, "index.html") == "v1\n"  # the failed host went back
    assert read_live(hosts[2], repo.name, "index.html") == "v1\n"  # never reached


def test_an_emergency_rollback_switches_every_host_at_once_without_hooks(
    db, settings, git_host, targets, tmp_path
):
    repo = Repo(git_host, tmp_path, unique("emerg"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    marker = f"/srv/{repo.name}-hook"
    apply(
        db,
        project_config(
            repo.name, repo.url, targets, tasks={"post_release": f"touch {marker}-$HOST\n"}
        ),
    )
    assert deploy(db, settings, repo.name, "v1")["status"] == "success"
    repo.commit({"index.html": "v2\n"}, tag="v2")
    assert deploy(db, settings, repo.name, "v2")["status"] == "success"
    for host in targets:
        path = host.path(f"{marker}-{host.address}")
        if path.exists():
            path.unlink()
    d = deploys.request_rollback(db, ADMIN, repo.name, "production", emergency=True)
    done = finish(db, settings, d.id)
    assert done["status"] == "success", done["error"]
    assert done["options"] == {"emergency": True}
    assert {read_live(h, repo.name, "index.html") for h in targets} == {"v1\n"}
    assert not any(os.path.exists(h.path(f"{marker}-{h.address}")) for h in targets)
    assert [s["name"] for s in done["stages"]] == ["prepare", "verify", "switch"]


def test_a_missing_required_command_stops_the_deploy_before_anything_changes(
    db, settings, git_host, targets, tmp_path
):
    repo = Repo(git_host, tmp_path, unique("needs"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(
        db,
        project_config(
            repo.name, repo.url, targets[:2], requires={"commands": ["bash", "no-such-tool-xyz"]}
        ),
    )
    failed = deploy(db, settings, repo.name, "v1")
    assert failed["status"] == "failed"
    assert "requires command no-such-tool-xyz" in failed["error"]["message"]
    assert all(live(h, repo.name) is None for h in targets[:2])


def test_aborting_a_paused_rollout_puts_the_canary_back_and_marks_the_release_bad(
    db, settings, git_host, targets, tmp_path, health_servers
):
    hosts = targets[:3]
    repo, config = _setup(git_host, hosts, tmp_path, canary=1, batches="100%", pause="manual")
    assert deploy(db, settings, repo.name, "v1")["status"] == "success"
    v1 = live(hosts[0], repo.name)
    apply(db, config)
    health_servers(repo.name, hosts)
    repo.commit({"index.html": "v2\n"}, tag="v2")
    requested = deploys.request_deploy(db, ADMIN, repo.name, "production", "v2")
    assert finish(db, settings, requested.id)["status"] == "paused"
    assert read_live(hosts[0], repo.name, "index.html") == "v2\n"
    rollouts.request(db, ADMIN, requested.id, "continue")
    with pytest.raises(Conflict, match="not paused"):
        rollouts.request(db, ADMIN, requested.id, "continue")  # once is enough
    # the first continue queued it; abort it before any worker picks it up
    from ferryman.db.models import Deploy

    with db.transaction() as s:  # back to paused, as if nobody had continued
        row = s.get(Deploy, requested.id)
        row.status, row.rollout_request = "paused", ""
    rollouts.request(db, ADMIN, requested.id, "abort")
    aborted = finish(db, settings, requested.id)
    assert aborted["status"] == "failed" and aborted["rollout"]["state"] == "aborted"
    assert {live(h, repo.name) for h in hosts} == {v1}
    bad = rollouts.bad_releases(db, failed_project_id(db, repo.name), "production")
    assert aborted["release"] in bad
    with pytest.raises(Conflict, match="marked bad"):
        deploys.request_rollback(db, ADMIN, repo.name, "production", to=aborted["release"])


def test_the_failed_hosts_of_a_finished_rollout_are_retried_without_touching_the_others(
    db, settings, git_host, targets, tmp_path, health_servers
):
    hosts = targets[:3]
    repo, config = _setup(git_host, hosts, tmp_path, batches=1, max_failed=1)
    assert deploy(db, settings, repo.name, "v1")["status"] == "success"
    apply(db, config)
    outage = tmp_path / "outage"
    health_servers(repo.name, hosts, outage)
    sick = hosts[2]
    outage.write_text(sick.address)  # one host's service is down during the rollout
    repo.commit({"index.html": "v2\n"}, tag="v2")
    done = deploy(db, settings, repo.name, "v2")
    assert done["status"] == "success" and list(done["rollout"]["failed"]) == [sick.address]
    assert read_live(sick, repo.name, "index.html") == "v1\n"  # put back, within max_failed
    assert {read_live(h, repo.name, "index.html") for h in hosts[:2]} == {"v2\n"}
    healthy_release = {h.address: live(h, repo.name) for h in hosts[:2]}
    outage.write_text("")  # it is back
    retry = deploys.request_retry(db, ADMIN, done["id"], failed_only=True)
    again = finish(db, settings, retry.id)
    assert again["status"] == "success", again["error"]
    assert again["hosts_selected"] == [sick.address]
    assert {h.address: live(h, repo.name) for h in hosts[:2]} == healthy_release
    assert read_live(sick, repo.name, "index.html") == "v2\n"


def test_the_drift_check_flags_hosts_switched_or_edited_by_hand(
    db, settings, git_host, targets, tmp_path
):
    import asyncio

    from ferryman.pipeline.context import new_context
    from ferryman.pipeline.verify import verify
    from ferryman.services import projects
    from ferryman.services.deploy_records import DatabaseWriter
    from ferryman.services.deploy_store import database_store

    hosts = targets[:3]
    repo = Repo(git_host, tmp_path, unique("drift"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, hosts))
    first = deploy(db, settings, repo.name, "v1")["release"]
    repo.commit({"index.html": "v2\n"}, tag="v2")
    second = deploy(db, settings, repo.name, "v2")["release"]
    link = hosts[1].path(f"/srv/www/{repo.name}")
    link.unlink()
    link.symlink_to(f"/srv/releases/{repo.name}/{first}")  # someone switched it by hand
    version = hosts[2].path(f"/srv/releases/{repo.name}/{second}/.ferryman-release")
    version.write_text(version.read_text().replace(second, "edited"))
    found, config = projects.project_config(db, ADMIN, repo.name, "project.read")
    recorded = deploy_views.live_releases(db, found.id, "production")
    seen = asyncio.run(
        verify(
            new_context(
                settings,
                config,
                "production",
                writer=DatabaseWriter(db),
                store_for=database_store(db),
            ),
            recorded,
        )
    )
    assert seen[hosts[0].address] == {"actual": second, "drift": ""}
    assert seen[hosts[1].address]["drift"] == f"live on {first}, the records say {second}"
    assert "changed by hand" in seen[hosts[2].address]["drift"]


def test_a_normal_rollback_of_a_gray_released_environment_goes_batch_by_batch(
    db, settings, git_host, targets, tmp_path, health_servers
):
    hosts = targets[:3]
    repo, config = _setup(git_host, hosts, tmp_path, canary=1, batches=1, pause="manual")
    assert deploy(db, settings, repo.name, "v1")["status"] == "success"
    v1 = live(hosts[0], repo.name)
    config["environments"]["production"]["strategy"]["pause"] = "none"
    apply(db, config)
    health_servers(repo.name, hosts)
    repo.commit({"index.html": "v2\n"}, tag="v2")
    assert deploy(db, settings, repo.name, "v2")["status"] == "success"
    seen = len(_lb_calls())  # what the deploys did; the rollback's calls follow
    back = finish(db, settings, deploys.request_rollback(db, ADMIN, repo.name, "production").id)
    assert back["status"] == "success", back["error"]
    assert {live(h, repo.name) for h in hosts} == {v1}
    assert [s["name"] for s in back["stages"] if s["name"].startswith("batch")] == [
        "batch 1/3 (canary)",
        "batch 2/3",
        "batch 3/3",
    ]
    assert [(w, h) for w, h in _lb_calls()[seen:]] == [
        (step, h.address) for h in hosts for step in ("out", "in")
    ]


def test_tcp_command_and_http_body_checks_pass_or_name_what_failed(
    db, settings, git_host, targets, tmp_path, health_servers
):
    hosts = targets[:2]
    repo = Repo(git_host, tmp_path, unique("checks"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    config = project_config(repo.name, repo.url, hosts)
    env = config["environments"]["production"]
    env["health_check"] = [
        {"tcp": f"{{HOST}}:{PORT}", "retries": 1},
        {"http": f"http://{{HOST}}:{PORT}/", "expect": 200, "contains": "ok", "retries": 1},
        {"command": 'grep -q v1 "$WEBROOT/index.html"', "retries": 1},
    ]
    apply(db, config)
    health_servers(repo.name, hosts)
    assert deploy(db, settings, repo.name, "v1")["status"] == "success"
    env["health_check"] = [
        {"command": 'grep -q v9 "$WEBROOT/index.html"', "retries": 2, "interval": "0.1s"}
    ]
    apply(db, config)
    repo.commit({"index.html": "v2\n"}, tag="v2")
    failed = deploy(db, settings, repo.name, "v2")
    assert failed["status"] == "failed"
    assert failed["error"]["details"]["stage"] == "health_check"
    assert "grep -q v9" in failed["error"]["details"]["command"]
    assert "after 2 tries" in failed["error"]["message"]
    assert {read_live(h, repo.name, "index.html") for h in hosts} == {"v1\n"}
