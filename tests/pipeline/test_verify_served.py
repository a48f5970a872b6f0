"""verify_served on the real fleet: after its switch each host must answer, from its own
address, with the new release's commit. A small web app per host (``served_app.py``, its own
process, stopped by its pid) serves the version file of the host's ``current`` release — or,
like a PHP opcache that was never reset, keeps serving the one it read at start."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ferryman.services import deploy_views
from ferryman.testing.fleet import FleetHost
from tests.helpers import (
    ADMIN,
    Repo,
    apply,
    deploy,
    live,
    project_config,
    read_live,
    rollback,
    unique,
)

pytestmark = pytest.mark.fleet
PORT = 21080
APP = Path(__file__).with_name("served_app.py")

Start = Callable[[str, FleetHost, str], None]


@pytest.fixture
def web_apps() -> Iterator[Start]:
    """``start(project, host, mode)``: the host's web app, listening on its own address."""
    started: list[subprocess.Popen[bytes]] = []

    def start(project: str, host: FleetHost, mode: str = "live") -> None:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(APP),
                host.address,
                str(PORT),
                str(host.root),
                project,
                mode,
            ],
            stdout=subprocess.PIPE,
        )
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"

    yield start
    for proc in started:
        proc.terminate()  # by its pid: this test's own processes only
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def _config(repo: Repo, hosts: list[FleetHost], **served: object) -> dict:
    config = project_config(repo.name, repo.url, hosts)
    config["environments"]["production"]["verify_served"] = {
        "http": f"http://{{HOST}}:{PORT}/version",
        "attempts": 3,
        "interval": "0.2s",
        "timeout": "2s",
        **served,
    }
    return config


def _logged(db, deploy_id: int, stage: str) -> list[str]:
    return [
        f"{line['host']} {line['text']}"
        for line in deploy_views.logs_after(db, deploy_id, limit=5000)
        if line["stage"] == stage
    ]


def test_every_host_proves_it_serves_the_new_commit_and_a_rollback_proves_the_old_one(
    db, settings, git_host, targets, tmp_path, web_apps
):
    hosts = targets[:3]
    repo = Repo(git_host, tmp_path, unique("served"))
    first = repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, _config(repo, hosts))
    for host in hosts:
        web_apps(repo.name, host, "live")
    one = deploy(db, settings, repo.name, "v1")
    assert one["status"] == "success", one["error"]
    second = repo.commit({"index.html": "v2\n"}, tag="v2")
    two = deploy(db, settings, repo.name, "v2")
    assert two["status"] == "success", two["error"]
    assert {live(h, repo.name) for h in hosts} == {two["release"]}
    proofs = _logged(db, two["id"], "verify_served")
    for host in hosts:
        assert any(p.startswith(host.address) and f"serves {second}" in p for p in proofs), proofs

    back = rollback(db, settings, repo.name)
    assert back["status"] == "success", back["error"]
    assert {live(h, repo.name) for h in hosts} == {one["release"]}
    proofs = _logged(db, back["id"], "verify_served")  # the commit from the version file
    for host in hosts:
        assert any(p.startswith(host.address) and f"serves {first}" in p for p in proofs), proofs


def test_a_host_that_keeps_serving_the_old_release_fails_and_every_host_goes_back(
    db, settings, git_host, targets, tmp_path, web_apps
):
    hosts = targets[:3]
    repo = Repo(git_host, tmp_path, unique("served"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, hosts))  # v1 the plain way
    one = deploy(db, settings, repo.name, "v1")
    assert one["status"] == "success", one["error"]
    apply(db, _config(repo, hosts))
    stale = hosts[1]
    for host in hosts:
        web_apps(repo.name, host, "cached" if host is stale else "live")
    repo.commit({"index.html": "v2\n"}, tag="v2")

    two = deploy(db, settings, repo.name, "v2")

    assert two["status"] == "failed"
    error = two["error"]
    assert error["code"] == "rollout_failed", error
    assert error["details"]["host"] == stale.address
    assert error["details"]["stage"] == "verify_served"
    assert f"host {stale.address} still serves {one['release']}" in error["message"]
    assert "after 3 tries" in error["message"]
    # on_failure: rollback (the default): every host is back on v1, v2 is marked bad
    assert {h.address: live(h, repo.name) for h in hosts} == {
        h.address: one["release"] for h in hosts
    }
    assert {read_live(h, repo.name, "index.html") for h in hosts} == {"v1\n"}
    tries = [p for p in _logged(db, two["id"], "verify_served") if p.startswith(stale.address)]
    assert len([t for t in tries if "(try " in t and "/3)" in t]) == 3, tries


def test_with_halt_the_stale_host_goes_back_and_the_rollout_stops_where_it_is(
    db, settings, git_host, targets, tmp_path, web_apps
):
    hosts = targets[:3]
    repo = Repo(git_host, tmp_path, unique("served"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, hosts))
    one = deploy(db, settings, repo.name, "v1")
    assert one["status"] == "success", one["error"]
    config = _config(repo, hosts, header="X-Commit")
    config["environments"]["production"]["strategy"] = {"batches": 1, "on_failure": "halt"}
    apply(db, config)
    for host in hosts:
        web_apps(repo.name, host, "cached" if host is hosts[1] else "live")
    repo.commit({"index.html": "v2\n"}, tag="v2")

    two = deploy(db, settings, repo.name, "v2")

    assert two["status"] == "failed"
    assert two["error"]["details"]["host"] == hosts[1].address
    # the header named the old release's commit
    assert f"still serves {one['release']}" in two["error"]["message"]
    assert live(hosts[0], repo.name) == two["release"]  # proved itself: stays
    assert live(hosts[1], repo.name) == one["release"]  # failed: put back
    assert live(hosts[2], repo.name) == one["release"]  # never reached
    assert two["rollout"]["state"] == "halted"


@pytest.mark.parametrize("mode", ["redirect", "huge"])
def test_a_redirect_is_not_followed_and_a_huge_answer_is_not_read_to_its_end(
    db, settings, git_host, targets, tmp_path, web_apps, mode
):
    hosts = targets[:1]
    repo = Repo(git_host, tmp_path, unique("served"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, hosts))
    one = deploy(db, settings, repo.name, "v1")
    assert one["status"] == "success", one["error"]
    apply(db, _config(repo, hosts, attempts=2))
    web_apps(repo.name, hosts[0], mode)
    repo.commit({"index.html": "v2\n"}, tag="v2")

    two = deploy(db, settings, repo.name, "v2")

    assert two["status"] == "failed"
    assert two["error"]["details"]["stage"] == "verify_served"
    if mode == "redirect":
        assert "status 302 (redirects are not followed)" in two["error"]["message"]
    else:  # the commit sits past the first 64 KiB: never reached
        assert "does not contain" in two["error"]["message"]
    assert live(hosts[0], repo.name) == one["release"]


@pytest.mark.parametrize(
    "extra",
    [
        {"verify_served": {"http": "http://{HOST}/v", "attempts": 30, "timeout": "5s"}},
        {"migrations": {"command": "bin/list", "timeout": "5m"}},
    ],
    ids=["verify_served", "migrations"],
)
def test_the_spaces_maximum_task_time_bounds_the_served_check_and_the_listing(db, extra):
    from ferryman.errors import ConfigError
    from ferryman.services import spaces

    spaces.update_limits(db, ADMIN, "default", max_task_timeout=60)
    config = {
        "project": unique("slow"),
        "repo": "ssh://git@127.0.0.1/x.git",
        "environments": {
            "production": {
                "hosts": ["127.0.0.1"],
                "webroot": "/srv/www/slow",
                "releases": "/srv/releases/slow",
                "task_timeout": 30,
                **extra,
            }
        },
    }
    with pytest.raises(ConfigError) as refused:
        apply(db, config)
    assert any("60s" in line for line in refused.value.details["errors"]), refused.value.details
