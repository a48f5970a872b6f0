"""Review (session 11) of what the tiered fan-out does to the deploy user's authorized_keys.

Removing the relay key's line (``commands.relay._drop_line``, run by ``revoke``,
``accept_relayed`` and ``unpack_relayed``) rewrites the file with ``grep -v``. GNU grep takes
a file holding a NUL byte — or, in a UTF-8 locale, a byte that is not UTF-8, such as an old
key's Latin-1 comment — for a binary file and does not print the lines it would: the rewrite
then drops them. With a NUL byte anywhere the whole file goes and the deploy user is locked
out of every host the deploy relayed to; the other lines are the user's, never the deploy's.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import asyncssh
import pytest

from ferryman.clock import utcnow
from ferryman.commands import relay
from ferryman.commands.remote import Command, Layout
from ferryman.remote.executor import Executor, Target
from ferryman.testing.fleet import Fleet, FleetHost
from ferryman.testing.relay_fleet import HOST_KEYS, start_relay_fleet
from tests.conftest import NET

FIRST = 146  # NET.146-147: this module's hosts
LAYOUT = Layout(webroot="/srv/www/keysfile", releases="/srv/releases/keysfile", shared_dir="/s")
ALICE = b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+RA2luTmn4CUbI7m4r9 alice\n"
BOB = b"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 bob@build\n"


@pytest.fixture(scope="module")
def hosts(fleet: Fleet) -> Iterator[Fleet]:
    base = Path(tempfile.mkdtemp(prefix="ferryman-review-relay-keysfile-"))
    started = start_relay_fleet(base, 2, NET, FIRST, client_key=fleet.client_key)
    try:
        yield started
    finally:
        started.stop()
        shutil.rmtree(base, ignore_errors=True)


def _run(hosts: Fleet, host: FleetHost, *commands: Command) -> None:
    async def go() -> None:
        executor = Executor(client_key=hosts.client_key, known_hosts=hosts.known_hosts)
        target = Target(key=host.address, address=host.address, port=22, user="root")
        try:
            for command in commands:
                await executor.run(target, command, stage="test", timeout=60)
        finally:
            await executor.close()

    asyncio.run(go())


def _line(deploy_id: int, relay_host: FleetHost) -> str:
    key = asyncssh.generate_private_key("ssh-ed25519")
    return relay.authorized_line(
        LAYOUT,
        deploy_id,
        key.export_public_key("openssh").decode(),
        size=1000,
        timeout=60,
        expires=utcnow() + timedelta(hours=1),
        sources=[relay_host.address],
    )


def _trust_then_revoke(hosts: Fleet, original: bytes, deploy_id: int) -> bytes:
    relay_host, receiver = hosts.hosts[0], hosts.hosts[1]
    keys = receiver.path(HOST_KEYS)
    keys.write_bytes(original)
    keys.chmod(0o600)
    _run(
        hosts,
        receiver,
        relay.make_dir(LAYOUT, deploy_id),
        relay.trust(HOST_KEYS, _line(deploy_id, relay_host)),
    )
    assert relay.marker(LAYOUT, deploy_id).encode() in keys.read_bytes()
    _run(hosts, receiver, relay.revoke(HOST_KEYS, LAYOUT, deploy_id))
    return keys.read_bytes()


def test_removing_the_relay_key_keeps_every_line_of_an_authorized_keys_file_with_a_nul_byte(
    hosts,
):
    original = ALICE + b"# moved from the old server\x00\n" + BOB
    assert _trust_then_revoke(hosts, original, 1461) == original


def test_removing_the_relay_key_keeps_a_line_whose_comment_is_latin1_in_a_utf8_locale(hosts):
    original = ALICE + b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFo jos\xe9@portable\n" + BOB
    # the locale the hosts' sshd gives the deploy user's commands (Debian: /etc/default/locale)
    relay_host, receiver = hosts.hosts[0], hosts.hosts[1]
    keys = receiver.path(HOST_KEYS)
    keys.write_bytes(original)
    keys.chmod(0o600)
    line = _line(1462, relay_host)
    _run(
        hosts,
        receiver,
        relay.make_dir(LAYOUT, 1462),
        relay.trust(HOST_KEYS, line),
        ("env", "LC_ALL=C.UTF-8", *relay.revoke(HOST_KEYS, LAYOUT, 1462)),
    )
    assert keys.read_bytes() == original
