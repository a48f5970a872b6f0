"""Tiered fan-out (``transfer: {fanout: N}``) on real sshd hosts that relay to each other: the
deploy host sends the package to ``N`` hosts, they pass it on with the deploy's own key, every
copy is checked before it is unpacked, a failed relay's hosts get a direct push, and no key
line or relay directory is left on any host."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ferryman.commands.relay import RELAY_PREFIX
from ferryman.services import deploy_views, deploys
from ferryman.testing.fleet import Fleet, FleetHost
from ferryman.testing.relay_fleet import HOST_KEYS, start_relay_fleet
from tests.conftest import NET
from tests.helpers import ADMIN, Repo, apply, deploy, finish, live, project_config, unique

FIRST = 100  # NET.100-106: this module's hosts (NET.106 has no OpenSSH client)


@pytest.fixture(scope="module")
def relay_fleet(fleet: Fleet) -> Iterator[Fleet]:
    base = Path(tempfile.mkdtemp(prefix="ferryman-relay-fleet-"))
    hosts = start_relay_fleet(base, 6, NET, FIRST, client_key=fleet.client_key, without_ssh=1)
    try:
        yield hosts
    finally:
        hosts.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def relay_settings(settings, relay_fleet):
    with settings.known_hosts.open("a") as fh:
        fh.write(relay_fleet.known_hosts.read_text())
    return settings


def _config(name: str, url: str, hosts: list[FleetHost], fanout: int, **env: Any) -> dict[str, Any]:
    transfer = {"fanout": fanout, "authorized_keys": HOST_KEYS}
    return project_config(name, url, hosts, transfer=transfer, **env)


def _logs(db, deploy_id: int) -> list[dict[str, Any]]:
    return deploy_views.logs_after(db, deploy_id, limit=5000)


def assert_no_relay_left(hosts: list[FleetHost], project: str) -> None:
    for host in hosts:
        keys = host.path(HOST_KEYS)
        assert "ferryman-relay" not in (keys.read_text() if keys.exists() else "")
        releases = host.path(f"/srv/releases/{project}")
        left = [p.name for p in releases.iterdir()] if releases.exists() else []
        assert not [n for n in left if n.startswith(RELAY_PREFIX)], (host.name, left)


def test_a_fanout_deploy_sends_the_package_to_fanout_hosts_and_relays_feed_the_rest(
    db, relay_settings, git_host, relay_fleet, tmp_path
):
    hosts = relay_fleet.hosts[:6]
    repo = Repo(git_host, tmp_path, unique("fan"))
    blob = os.urandom(256 * 1024)
    (repo.work / "blob.bin").write_bytes(blob)
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, _config(repo.name, repo.url, hosts, 2))
    done = deploy(db, relay_settings, repo.name, "v1")
    assert done["status"] == "success", done.get("error")
    for host in hosts:  # every host serves the release, byte for byte
        release = live(host, repo.name)
        assert release
        root = host.path(f"/srv/releases/{repo.name}/{release}")
        assert (root / "index.html").read_text() == "v1\n"
        assert (root / "blob.bin").read_bytes() == blob
    transfer = next(s for s in done["stages"] if s["name"] == "transfer")
    # the deploy host streamed the package to the first two hosts only
    assert sorted(transfer["bytes"]) == sorted(h.address for h in hosts[:2])
    texts = [line["text"] for line in _logs(db, done["id"])]
    assert any("tiered fan-out: the deploy host feeds 2 of 6 host(s)" in t for t in texts)
    assert not any("sends it directly" in t for t in texts)
    assert_no_relay_left(hosts, repo.name)


def test_fanout_is_not_used_for_no_more_hosts_than_the_fanout(
    db, relay_settings, git_host, relay_fleet, tmp_path
):
    hosts = relay_fleet.hosts[:3]
    repo = Repo(git_host, tmp_path, unique("fansmall"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, _config(repo.name, repo.url, hosts, 4))
    done = deploy(db, relay_settings, repo.name, "v1")
    assert done["status"] == "success"
    transfer = next(s for s in done["stages"] if s["name"] == "transfer")
    assert sorted(transfer["bytes"]) == sorted(h.address for h in hosts)  # all direct
    assert not any("tiered" in line["text"] for line in _logs(db, done["id"]))


def test_a_relay_that_cannot_pass_the_package_on_leaves_its_hosts_to_a_direct_push(
    db, relay_settings, git_host, relay_fleet, tmp_path
):
    broken = relay_fleet.hosts[6]  # no OpenSSH client: its relaying fails
    ordered = [relay_fleet.hosts[0], broken, *relay_fleet.hosts[1:5]]
    # the tree: h100 feeds h101 h102; the broken host feeds h103 h104
    repo = Repo(git_host, tmp_path, unique("fanbroken"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, _config(repo.name, repo.url, ordered, 2))
    done = deploy(db, relay_settings, repo.name, "v1")
    assert done["status"] == "success", done.get("error")
    for host in ordered:
        assert host.path(f"/srv/releases/{repo.name}/{live(host, repo.name)}/index.html").exists()
    logs = _logs(db, done["id"])
    fallen = {line["host"] for line in logs if "the deploy host sends it directly" in line["text"]}
    assert fallen == {relay_fleet.hosts[3].address, relay_fleet.hosts[4].address}
    transfer = next(s for s in done["stages"] if s["name"] == "transfer")
    assert sorted(transfer["bytes"]) == sorted(
        h.address for h in [ordered[0], broken, relay_fleet.hosts[3], relay_fleet.hosts[4]]
    )
    assert_no_relay_left(ordered, repo.name)


def test_a_deploy_failing_after_the_relays_leaves_no_key_and_no_release(
    db, relay_settings, git_host, relay_fleet, tmp_path
):
    hosts = relay_fleet.hosts[:5]
    repo = Repo(git_host, tmp_path, unique("fanfail"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(
        db,
        _config(repo.name, repo.url, hosts, 2, tasks={"pre_release": "echo no >&2; exit 3"}),
    )
    done = deploy(db, relay_settings, repo.name, "v1")
    assert done["status"] == "failed"
    for host in hosts:
        assert live(host, repo.name) is None
    assert_no_relay_left(hosts, repo.name)


def test_a_deploy_cancelled_while_the_relays_are_set_up_leaves_no_key_anywhere(
    db, relay_settings, git_host, relay_fleet, tmp_path
):
    hosts = relay_fleet.hosts[:5]
    repo = Repo(git_host, tmp_path, unique("fancancel"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, _config(repo.name, repo.url, hosts, 2))
    # the last host's key file is locked: trusting the relay key there waits, meanwhile the
    # deploy is cancelled
    held = os.open(hosts[-1].path("/srv/.ssh"), os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)
    d = deploys.request_deploy(db, ADMIN, repo.name, "production", "v1")
    first_dir = hosts[0].path(f"/srv/releases/{repo.name}/{RELAY_PREFIX}{d.id}")

    def cancel_then_unlock() -> None:
        try:
            for _ in range(1200):
                if first_dir.exists():
                    break
                time.sleep(0.05)
            deploys.request_cancel(db, ADMIN, d.id, "changed my mind")
            time.sleep(3)  # the deploy's watcher sees the cancel (it looks every second)
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)
            os.close(held)

    helper = threading.Thread(target=cancel_then_unlock)
    helper.start()
    try:
        done = finish(db, relay_settings, d.id)
    finally:
        helper.join()
    assert done["status"] == "cancelled", done.get("error")
    for host in hosts:
        assert live(host, repo.name) is None
    assert_no_relay_left(hosts, repo.name)
