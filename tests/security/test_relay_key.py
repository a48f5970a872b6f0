"""The tiered fan-out's relay key, attacked the way a relay host — or anyone who read the key
off one — would: on real sshd hosts, with the very line a deploy writes. It can put at most
the package's size of bytes into one file of the deploy's directory and nothing else: no
command, no shell, no forwarding, no sftp, no other path, not from another address, not once
revoked, expired or once the directory is gone. And a deploy whose worker dies leaves it on no
host: the recovery removes it."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import asyncssh
import pytest

from ferryman.clock import utcnow
from ferryman.commands import relay
from ferryman.commands.remote import Layout
from ferryman.remote.executor import Executor, Target
from ferryman.services import deploy_views, deploys
from ferryman.testing.fleet import Fleet, FleetHost
from ferryman.testing.relay_fleet import HOST_KEYS, start_relay_fleet
from tests.conftest import NET
from tests.helpers import ADMIN, Repo, apply, live, project_config, unique
from tests.jobs.test_worker_loss import LEASE, _rescue, _wait, _worker

FIRST = 110  # NET.110-113: this module's hosts
SIZE = 1000  # the "package" size the line allows


@pytest.fixture(scope="module")
def hosts(fleet: Fleet) -> Iterator[Fleet]:
    base = Path(tempfile.mkdtemp(prefix="ferryman-relay-attack-"))
    started = start_relay_fleet(base, 4, NET, FIRST, client_key=fleet.client_key)
    try:
        yield started
    finally:
        started.stop()
        shutil.rmtree(base, ignore_errors=True)


def _target(host: FleetHost) -> Target:
    return Target(key=host.address, address=host.address, port=22, user="root")


def _on_host(hosts: Fleet, host: FleetHost, *commands: tuple[str, ...], stdin: bytes = b"") -> None:
    async def go() -> None:
        executor = Executor(client_key=hosts.client_key, known_hosts=hosts.known_hosts)
        try:
            for command in commands:
                await executor.run(_target(host), command, stage="test", timeout=60, stdin=stdin)
        finally:
            await executor.close()

    asyncio.run(go())


class Armed:
    """A receiving host trusting a fresh relay key from one relay's address."""

    def __init__(self, hosts: Fleet, tmp: Path, layout: Layout, deploy_id: int, **line: object):
        self.hosts, self.layout, self.deploy_id = hosts, layout, deploy_id
        self.relay, self.receiver, self.other = hosts.hosts[0], hosts.hosts[1], hosts.hosts[2]
        key = asyncssh.generate_private_key("ssh-ed25519")
        self.key = tmp / f"relay-key-{deploy_id}"
        self.key.write_bytes(key.export_private_key("openssh"))
        self.key.chmod(0o600)
        options: dict[str, object] = {
            "size": SIZE,
            "timeout": 60,
            "expires": utcnow() + timedelta(hours=1),
            "sources": [self.relay.address],
        }
        options.update(line)
        self.line = relay.authorized_line(
            layout,
            deploy_id,
            key.export_public_key("openssh").decode(),
            **options,  # type: ignore[arg-type]
        )
        _on_host(
            hosts,
            self.receiver,
            relay.make_dir(layout, deploy_id),
            relay.trust(HOST_KEYS, self.line),
        )
        self.dir = self.receiver.path(relay.relay_dir(layout, deploy_id))

    def ssh(
        self, *args: str, source: FleetHost | None = None, stdin: bytes = b"", tool: str = "ssh"
    ) -> subprocess.CompletedProcess[bytes]:
        """OpenSSH from this machine with the relay key, bound to ``source`` (the relay)."""
        bind = (source or self.relay).address
        argv = [
            tool,
            "-F",
            "/dev/null",
            "-i",
            str(self.key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={self.hosts.known_hosts}",
            "-o",
            f"BindAddress={bind}",
            "-o",
            "ConnectTimeout=10",
            *args,
        ]
        return subprocess.run(argv, input=stdin, capture_output=True, timeout=60, check=False)

    def revoke(self) -> None:
        _on_host(self.hosts, self.receiver, relay.revoke(HOST_KEYS, self.layout, self.deploy_id))


LAYOUT = Layout(webroot="/srv/www/attack", releases="/srv/releases/attack", shared_dir="/srv/s")


def _markers(host: FleetHost) -> list[str]:
    return sorted(p.name for p in host.root.iterdir() if p.name.startswith("pwned"))


def test_the_relay_key_runs_no_command_it_only_fills_the_relayed_file(hosts, tmp_path):
    armed = Armed(hosts, tmp_path, LAYOUT, 901)
    target = f"root@{armed.receiver.address}"
    done = armed.ssh(target, "touch /srv/pwned-command; id", stdin=b"data")
    assert done.returncode == 0, done.stderr
    assert _markers(armed.receiver) == []
    assert b"uid=" not in done.stdout  # no command ran: only the forced one
    assert (armed.dir / "relayed").read_bytes() == b"data"
    # a shell script on stdin is data: it lands in the file and never runs
    armed.ssh(target, stdin=b"touch /srv/pwned-stdin\n")
    assert _markers(armed.receiver) == []
    assert (armed.dir / "relayed").read_bytes() == b"touch /srv/pwned-stdin\n"
    # asking for a pty changes nothing
    armed.ssh("-tt", target, "touch /srv/pwned-tty", stdin=b"touch /srv/pwned-tty2\n")
    assert _markers(armed.receiver) == []
    armed.revoke()


def test_the_relay_key_writes_at_most_the_package_size_and_only_its_one_file(hosts, tmp_path):
    armed = Armed(hosts, tmp_path, LAYOUT, 902, timeout=3)  # sftp waits for an answer
    target = f"root@{armed.receiver.address}"
    armed.ssh(target, "../../../srv/pwned-path", stdin=b"x" * (SIZE * 5))
    assert (armed.dir / "relayed").read_bytes() == b"x" * SIZE
    assert sorted(p.name for p in armed.dir.iterdir()) == ["relayed"]
    assert _markers(armed.receiver) == []
    # sftp is a subsystem: the forced command runs instead, nothing is put anywhere
    batch = tmp_path / "batch"
    batch.write_text("put /etc/hostname /srv/pwned-sftp\n")
    armed.ssh("-b", str(batch), target, tool="sftp")
    assert _markers(armed.receiver) == []
    armed.revoke()


def test_the_relay_key_forwards_no_port_and_opens_no_socket(hosts, tmp_path):
    armed = Armed(hosts, tmp_path, LAYOUT, 903, timeout=3)
    target = f"root@{armed.receiver.address}"
    remote = armed.ssh("-N", "-o", "ExitOnForwardFailure=yes", "-R", "2023:127.0.0.1:22", target)
    assert remote.returncode == 255  # the server refused to listen for it
    # what -L and ProxyJump open: a direct-tcpip channel to the other host's sshd
    local = armed.ssh("-W", f"{armed.other.address}:22", target)
    assert local.returncode == 255
    assert b"SSH-2.0" not in local.stdout  # never reached the other host's sshd
    armed.revoke()


def test_the_relay_key_is_refused_from_another_address_once_revoked_and_once_expired(
    hosts, tmp_path
):
    armed = Armed(hosts, tmp_path, LAYOUT, 904)
    target = f"root@{armed.receiver.address}"
    stranger = armed.ssh(target, source=armed.other, stdin=b"evil")
    assert stranger.returncode == 255  # from= names the relay only
    assert not (armed.dir / "relayed").exists()
    armed.revoke()
    assert relay.marker(LAYOUT, 904) not in armed.receiver.path(HOST_KEYS).read_text()
    assert not armed.dir.exists()
    gone = armed.ssh(target, stdin=b"late")
    assert gone.returncode == 255
    assert not armed.dir.exists()  # the key never makes its directory again

    expired = Armed(hosts, tmp_path, LAYOUT, 905, expires=utcnow() - timedelta(minutes=1))
    assert expired.ssh(target, stdin=b"late").returncode == 255
    assert not (expired.dir / "relayed").exists()
    expired.revoke()


def test_a_key_left_after_its_directory_is_gone_writes_nothing_anywhere(hosts, tmp_path):
    armed = Armed(hosts, tmp_path, LAYOUT, 906)
    shutil.rmtree(armed.dir)
    done = armed.ssh(f"root@{armed.receiver.address}", stdin=b"data")
    assert done.returncode != 0
    assert not armed.dir.exists()
    armed.revoke()


def test_shell_characters_in_the_releases_path_stay_a_path(hosts, tmp_path):
    odd = Layout(
        webroot="/srv/www/odd",
        releases="/srv/releases/a b;touch /srv/pwned-semi;$(touch /srv/pwned-subst)`touch x`",
        shared_dir="/srv/s",
    )
    armed = Armed(hosts, tmp_path, odd, 907)
    armed.ssh(f"root@{armed.receiver.address}", stdin=b"data")
    assert (armed.dir / "relayed").read_bytes() == b"data"
    assert _markers(armed.receiver) == []
    armed.revoke()
    assert not armed.dir.exists()


def test_what_a_relay_writes_is_checked_on_a_copy_it_cannot_touch(hosts, tmp_path):
    armed = Armed(hosts, tmp_path, LAYOUT, 908)
    target = f"root@{armed.receiver.address}"
    armed.ssh(target, stdin=b"forged package")

    async def accept() -> str:
        executor = Executor(client_key=hosts.client_key, known_hosts=hosts.known_hosts)
        try:
            result = await executor.run(
                _target(armed.receiver),
                relay.accept_relayed(LAYOUT, 908, SIZE, HOST_KEYS),
                stage="test",
                timeout=60,
            )
        finally:
            await executor.close()
        return relay.parse_digest(result.stdout)

    digest = asyncio.run(accept())
    assert digest == hashlib.sha256(b"forged package").hexdigest()  # not the package's: refused
    copy = armed.dir / "package"
    assert relay.marker(LAYOUT, 908) not in armed.receiver.path(HOST_KEYS).read_text()
    later = armed.ssh(target, stdin=b"rewritten later")  # the key went with the check
    assert later.returncode == 255
    assert copy.read_bytes() == b"forged package"  # the checked copy is what gets unpacked
    armed.revoke()


def test_a_deploy_whose_worker_dies_while_relays_are_set_up_leaves_no_key_on_any_host(
    db, settings, git_host, hosts, tmp_path
):
    with settings.known_hosts.open("a") as fh:
        fh.write(hosts.known_hosts.read_text())
    targets = hosts.hosts[:4]
    repo = Repo(git_host, tmp_path, unique("fandie"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    transfer = {"fanout": 2, "authorized_keys": HOST_KEYS}
    apply(db, project_config(repo.name, repo.url, targets, transfer=transfer))
    held = os.open(targets[-1].path("/srv/.ssh"), os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)  # the last host's trust waits: the worker dies meanwhile
    locked = True
    doomed = deploys.request_deploy(db, ADMIN, repo.name, "production", "v1")
    receiver = targets[2].path(HOST_KEYS)
    victim = _worker(settings)
    try:
        _wait(
            lambda: receiver.exists() and "ferryman-relay" in receiver.read_text(),
            120,
            "the relay key on a receiving host",
        )
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        fcntl.flock(held, fcntl.LOCK_UN)
        locked = False
        _rescue(db, settings, doomed.id, float(LEASE) * 4 + 60, "the deploy to be recovered")
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait(10)
        if locked:
            fcntl.flock(held, fcntl.LOCK_UN)
        os.close(held)
    assert deploy_views.get(db, doomed.id)["status"] == "failed"
    for host in targets:
        keys = host.path(HOST_KEYS)
        assert "ferryman-relay" not in (keys.read_text() if keys.exists() else "")
        releases = host.path(f"/srv/releases/{repo.name}")
        left = [p.name for p in releases.iterdir()] if releases.exists() else []
        assert not [n for n in left if n.startswith(relay.RELAY_PREFIX)], (host.name, left)
        assert live(host, repo.name) is None
