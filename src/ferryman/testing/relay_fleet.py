"""Test hosts for the tiered fan-out: each host's sshd also reads ``/srv/.ssh/authorized_keys``.

The test fleet's hosts share one ``authorized_keys`` file (beside the fleet, outside every
host's ``/srv``) and root's real ``~/.ssh`` is never touched. A relay key must be trusted by
one host and not the others, so these hosts also read a file of their own, under their own
``/srv`` (projects name it in ``transfer.authorized_keys``). Every host shares the machine's
network namespace, so a host reaches the others' sshd on their loopback addresses like the
deploy host does; a relay binds its connections to its own address (``BindAddress``), which
is what the receivers' ``from=`` expects.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

from ferryman.testing.fleet import Fleet, FleetHost, add_host, start_fleet

HOST_KEYS = "/srv/.ssh/authorized_keys"  # what the projects of these hosts name


def own_keys_file(fleet: Fleet, host: FleetHost) -> None:
    """Make ``host``'s sshd read ``HOST_KEYS`` too (after the fleet's shared file): its
    configuration is rewritten and the daemon re-reads it (SIGHUP)."""
    config = host.pid_file.parent / "sshd_config"
    lines = config.read_text().splitlines()
    lines = [
        f"{line} {HOST_KEYS}"
        if line.startswith("AuthorizedKeysFile ") and HOST_KEYS not in line
        else line
        for line in lines
    ]
    config.write_text("\n".join(lines) + "\n")
    (host.root / ".ssh").mkdir(mode=0o700, exist_ok=True)
    pid = host.pid()
    if pid is None:
        raise RuntimeError(f"{host.name} has no sshd")
    host.pid_file.unlink()
    os.kill(pid, signal.SIGHUP)  # sshd re-executes itself with the new configuration
    deadline = time.monotonic() + 20
    while host.pid() is None or not _listening(host.address):
        if time.monotonic() > deadline:
            raise RuntimeError(f"sshd on {host.address} did not come back")
        time.sleep(0.05)


def _listening(address: str) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=0.5):
            return True
    except OSError:
        return False


def start_relay_fleet(
    base: Path,
    count: int,
    network: str,
    first: int,
    client_key: Path | None = None,
    tmpfs: bool = False,
    without_ssh: int = 0,
) -> Fleet:
    """``count`` hosts at ``<network>.<first>``… reading their own authorized_keys file too,
    then ``without_ssh`` more whose OpenSSH client is hidden (a relay there fails). With
    ``client_key`` (and its ``.pub``) the fleet takes that client key (the test fleet's)."""
    base.mkdir(parents=True, exist_ok=True)
    if client_key is not None:
        for suffix in ("", ".pub"):
            target = base / f"id_ed25519{suffix}"
            target.write_bytes(Path(f"{client_key}{suffix}").read_bytes())
            target.chmod(0o600)
    fleet = start_fleet(base, count, network=network, first=first, tmpfs=tmpfs)
    for i in range(without_ssh):
        n = first + count + i
        add_host(fleet, f"h{n}", f"{network}.{n}", tmpfs=tmpfs, without=("ssh",))
    for host in fleet.hosts:
        own_keys_file(fleet, host)
    return fleet
