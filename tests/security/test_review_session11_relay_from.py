"""Review (session 11) of the tiered fan-out's ``from=``: a receiving host must trust the relay
key only from the relay that feeds it, whatever way the project names that relay.

``pipeline/relay.py`` wrote ``from=`` only when the relay's address was an IP literal that
Python's ``ipaddress`` reads; for any other address — a DNS name, the usual case, or an IPv4
literal with leading zeros that OpenSSH and the C library read — the key line had no ``from=``
at all and the key worked from anywhere. Now only hosts named by an IP literal relay, and a
key line without ``from=`` cannot be written. The test uses a leading-zero literal of a host
of this fleet (a name cannot be made to resolve into the test network here); a name takes the
same path.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncssh
import pytest

from ferryman.commands import relay as cmd
from ferryman.commands.remote import Layout
from ferryman.pipeline import relay
from ferryman.remote.executor import Executor, Target
from ferryman.testing.fleet import Fleet, FleetHost
from ferryman.testing.relay_fleet import HOST_KEYS, start_relay_fleet
from tests.conftest import NET

FIRST = 140  # NET.140-142: this module's hosts
LAYOUT = Layout(webroot="/srv/www/fromcheck", releases="/srv/releases/fromcheck", shared_dir="/s")
DEPLOY = 1401


@pytest.fixture(scope="module")
def hosts(fleet: Fleet) -> Iterator[Fleet]:
    base = Path(tempfile.mkdtemp(prefix="ferryman-review-relay-from-"))
    started = start_relay_fleet(base, 3, NET, FIRST, client_key=fleet.client_key)
    try:
        yield started
    finally:
        started.stop()
        shutil.rmtree(base, ignore_errors=True)


def _target(host: FleetHost, address: str | None = None) -> Target:
    return Target(key=host.address, address=address or host.address, port=22, user="root")


def _zero_padded(address: str) -> str:
    """The same IPv4 address with a leading zero in its second byte ("127.000.181.140")."""
    first, second, *rest = address.split(".")
    return ".".join([first, second.zfill(3), *rest])


def _context(executor: Executor) -> Any:
    env = SimpleNamespace(
        transfer=SimpleNamespace(fanout=2, authorized_keys=HOST_KEYS),
        transfer_timeout=60.0,
        connect_timeout=10.0,
        parallel=4,
    )

    async def remote(target: Target, command: Any, **kw: Any) -> Any:
        return await executor.run(target, command, stage="test", timeout=60, stdin=kw.get("stdin"))

    logged: list[str] = []
    recorder = SimpleNamespace(log=lambda text, **kw: logged.append(text))
    return SimpleNamespace(
        env=env,
        limit=None,
        layout=LAYOUT,
        deploy_id=DEPLOY,
        remote=remote,
        recorder=recorder,
        executor=executor,
    )


def _ssh_with_key(key: Path, hosts: Fleet, bind: str, to: FleetHost) -> None:
    subprocess.run(
        [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={hosts.known_hosts}",
            "-o",
            f"BindAddress={bind}",
            "-o",
            "ConnectTimeout=10",
            f"root@{to.address}",
        ],
        input=b"written from a host that feeds no one here",
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_a_host_not_named_by_a_plain_ip_literal_never_relays_and_every_key_line_has_from(
    hosts, tmp_path
):
    """The fix: such a host is never made a relay (its children's lines could not say where
    the key comes from); it is fed like any other, and its own key line names its relay's
    address, from which alone the key writes."""
    feeder, sibling, receiver = hosts.hosts[0], hosts.hosts[1], hosts.hosts[2]
    # the project names a host in a form OpenSSH reaches but ``ipaddress`` does not read
    named = _target(feeder, _zero_padded(feeder.address))
    chain = [named, _target(sibling), _target(receiver)]  # fanout 2
    key = asyncssh.generate_private_key("ssh-ed25519")
    private = tmp_path / "relay-key"
    private.write_bytes(key.export_private_key("openssh"))
    private.chmod(0o600)

    async def set_up() -> None:
        executor = Executor(client_key=hosts.client_key, known_hosts=hosts.known_hosts)
        try:
            tiered = relay.Relay(_context(executor), chain, tmp_path / "package")
            assert named.key not in tiered.tree.children  # never a relay
            assert tiered.tree.parent[named.key].address == sibling.address
            await tiered._setup(
                named,
                key.export_public_key("openssh").decode(),
                key.export_private_key("openssh"),
                1000,
            )
        finally:
            await executor.close()

    async def tear_down() -> None:
        executor = Executor(client_key=hosts.client_key, known_hosts=hosts.known_hosts)
        try:
            await executor.run(
                _target(feeder),
                cmd.revoke(HOST_KEYS, LAYOUT, DEPLOY),
                stage="test",
                timeout=60,
            )
        finally:
            await executor.close()

    asyncio.run(set_up())
    try:
        lines = [
            line
            for line in feeder.path(HOST_KEYS).read_text().splitlines()
            if line.endswith(cmd.marker(LAYOUT, DEPLOY))
        ]
        assert len(lines) == 1
        assert f'from="{sibling.address}"' in lines[0]
        # a host that does not feed it (or anyone holding the key elsewhere) writes nothing
        _ssh_with_key(private, hosts, receiver.address, feeder)
        relayed = feeder.path(f"{cmd.relay_dir(LAYOUT, DEPLOY)}/{cmd.RELAYED}")
        assert not relayed.exists(), "the relay key worked from an address that feeds no one"
    finally:
        asyncio.run(tear_down())
