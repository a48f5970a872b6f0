"""Review (session 11) of what a tiered fan-out deploy leaves on a host that went away during
it: the host's relay key line (trusted from its relay until ``expiry-time``) and its
``.ferryman-relay-<deploy>`` directory (what was relayed, the checked package copy, on a relay
the private key) stay when the host is unreachable while the deploy removes them, and no later
deploy ever removes them (the staging dirs of earlier deploys are swept; these are not): the
directory stays forever, a package's size of disk each time.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferryman.commands.relay import RELAY_PREFIX
from ferryman.services import deploys
from ferryman.testing.fleet import Fleet, restart_host
from ferryman.testing.relay_fleet import HOST_KEYS, own_keys_file, start_relay_fleet
from tests.conftest import NET
from tests.helpers import ADMIN, Repo, apply, deploy, finish, project_config, unique

FIRST = 150  # NET.150-154: this module's hosts


@pytest.fixture(scope="module")
def relay_fleet(fleet: Fleet) -> Iterator[Fleet]:
    base = Path(tempfile.mkdtemp(prefix="ferryman-review-relay-leftover-"))
    hosts = start_relay_fleet(base, 5, NET, FIRST, client_key=fleet.client_key)
    try:
        yield hosts
    finally:
        hosts.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_a_host_lost_mid_relay_has_its_relay_key_and_directory_removed_by_the_next_deploy(
    db, settings, git_host, relay_fleet, tmp_path
):
    with settings.known_hosts.open("a") as fh:
        fh.write(relay_fleet.known_hosts.read_text())
    hosts = list(relay_fleet.hosts[:5])  # fanout 2: h150 feeds h152 and h153, h151 feeds h154
    leaf = hosts[2]
    repo = Repo(git_host, tmp_path, unique("fanlost"))
    (repo.work / "blob.bin").write_bytes(os.urandom(64 * 1024))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    transfer = {"fanout": 2, "authorized_keys": HOST_KEYS}
    apply(db, project_config(repo.name, repo.url, hosts, transfer=transfer))
    # once the leaf trusts the relay key, its key file is locked: when its relayed copy is
    # taken, removing its key line waits; the host goes away right then
    d = deploys.request_deploy(db, ADMIN, repo.name, "production", "v1")
    leaf_dir = leaf.path(f"/srv/releases/{repo.name}/{RELAY_PREFIX}{d.id}")
    leaf_keys = leaf.path(HOST_KEYS)
    killed = threading.Event()

    def kill_when_taken() -> None:
        held = os.open(leaf.path("/srv/.ssh"), os.O_RDONLY)
        try:
            for _ in range(24000):
                if leaf_keys.exists() and "ferryman-relay" in leaf_keys.read_text():
                    break
                time.sleep(0.005)
            fcntl.flock(held, fcntl.LOCK_EX)
            for _ in range(2400):
                if (leaf_dir / "package").exists() and not (leaf_dir / "relayed").exists():
                    relay_fleet.kill_host(leaf)
                    killed.set()
                    break
                time.sleep(0.05)
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)
            os.close(held)

    helper = threading.Thread(target=kill_when_taken)
    helper.start()
    try:
        finish(db, settings, d.id)
    finally:
        helper.join()
    assert killed.is_set(), "the leaf's relayed copy was never taken"
    restart_host(relay_fleet, leaf)
    own_keys_file(relay_fleet, relay_fleet.hosts[-1])
    assert leaf_dir.exists()  # what the lost host kept (the deploy could not remove it)

    again = deploy(db, settings, repo.name, "v1")
    assert again["status"] == "success", again.get("error")
    for host in hosts:
        keys = host.path(HOST_KEYS)
        assert "ferryman-relay" not in (keys.read_text() if keys.exists() else ""), host.name
        releases = host.path(f"/srv/releases/{repo.name}")
        left = [p.name for p in releases.iterdir() if p.name.startswith(RELAY_PREFIX)]
        assert left == [], (host.name, left)
