"""A real test fleet: one OpenSSH ``sshd`` per host, each in its own mount and UTS namespace.

Every host listens on its own loopback address (``127.0.X.Y:22``) and sees its own directory
mounted on ``/srv`` and its own hostname, while sharing the rest of the machine. Used by the
test suite, ``scripts/fleet`` and the benchmarks. Needs root, ``unshare`` and ``/usr/sbin/sshd``.

Nothing here touches root's own ``~/.ssh``: each fleet has its own ``authorized_keys`` file named
in its sshd configuration, and its own ``known_hosts`` file that the client side must use.
Every process is stopped by the pid it wrote, never by name.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"
DEFAULT_NETWORK = os.environ.get("FERRYMAN_FLEET_NET", "127.0.100")


@dataclass
class FleetHost:
    name: str
    address: str
    root: Path  # what the host sees as /srv
    pid_file: Path

    def path(self, remote_path: str) -> Path:
        """Where a path under ``/srv`` on the host lives on this machine."""
        if not remote_path.startswith("/srv"):
            raise ValueError(f"not under /srv: {remote_path}")
        return self.root / remote_path[len("/srv") :].lstrip("/")

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None


@dataclass
class Fleet:
    base: Path
    client_key: Path
    known_hosts: Path
    hosts: list[FleetHost] = field(default_factory=list)
    services: list[Path] = field(default_factory=list)  # pid files of extra daemons (svnserve)

    def stop(self) -> None:
        for pid_file in [h.pid_file for h in self.hosts] + self.services:
            try:
                pid = int(pid_file.read_text().strip())
            except (OSError, ValueError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def kill_host(self, host: FleetHost) -> None:
        """Kill a host's sshd and every session it serves, as if the machine went away."""
        pid = host.pid()
        if pid is None:
            return
        children = _descendants(pid)
        for p in [pid, *children]:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _descendants(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True, check=True
    ).stdout
    parents: dict[int, list[int]] = {}
    for line in out.splitlines():
        child, parent = (int(x) for x in line.split())
        parents.setdefault(parent, []).append(child)
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in parents.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
    )


def _sshd_config(base: Path, address: str, host_key: Path, pid_file: Path, keys: Path) -> str:
    return "\n".join(
        [
            f"ListenAddress {address}:22",
            f"HostKey {host_key}",
            f"PidFile {pid_file}",
            f"AuthorizedKeysFile {keys}",
            "StrictModes no",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "UsePAM no",
            "UseDNS no",
            "MaxStartups 300",
            "MaxSessions 100",
            "LogLevel ERROR",
            f"Subsystem sftp {_sftp_server()}",
            "",
        ]
    )


def _sftp_server() -> str:
    for candidate in ("/usr/lib/openssh/sftp-server", "/usr/libexec/sftp-server"):
        if Path(candidate).exists():
            return candidate
    return "internal-sftp"


def _refuse_if_taken(address: str) -> None:
    """Two test runs on one machine must not share addresses: the second would talk to the
    first one's hosts and fail in confusing ways."""
    try:
        with socket.create_connection((address, 22), timeout=0.5):
            pass
    except OSError:
        return
    raise RuntimeError(
        f"{address}:22 is already in use (another test run or fleet?); "
        "pick other addresses with FERRYMAN_TEST_NET or FERRYMAN_BENCH_NET"
    )


def wait_listening(address: str, deadline: float) -> None:
    """Wait until an sshd answers on ``address``:22 (monotonic ``deadline``)."""
    while True:
        try:
            with socket.create_connection((address, 22), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"sshd on {address} did not start") from None
            time.sleep(0.02)


def start_fleet(
    base: Path,
    count: int,
    network: str = DEFAULT_NETWORK,
    first: int = 1,
    tmpfs: bool = False,
) -> Fleet:
    """Start ``count`` hosts ``h<first>``… at ``<network>.<first>``…, state under ``base``."""
    base.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    Path("/srv").mkdir(exist_ok=True)
    client_key = base / "id_ed25519"
    if not client_key.exists():
        _keygen(client_key, "ferryman-fleet-client")
    (base / "authorized_keys").write_text((base / "id_ed25519.pub").read_text())
    (base / "empty-bashrc").write_text("")
    fleet = Fleet(base=base, client_key=client_key, known_hosts=base / "known_hosts")
    fleet.known_hosts.write_text("")
    for i in range(count):
        add_host(fleet, f"h{first + i}", f"{network}.{first + i}", tmpfs=tmpfs, wait=False)
    deadline = time.monotonic() + 20 + count * 0.1  # hundreds of hosts start on 2 cores
    for host in fleet.hosts:
        wait_listening(host.address, deadline)
    return fleet


def add_host(
    fleet: Fleet,
    name: str,
    address: str,
    tmpfs: bool = False,
    wait: bool = True,
    without: tuple[str, ...] = (),
) -> FleetHost:
    """Start one more host in ``fleet``: same client key, host key added to known_hosts.
    ``without`` names programs this host must lack (hidden in its own mount namespace)."""
    _refuse_if_taken(address)
    hdir = fleet.base / name
    root = hdir / "srv"
    root.mkdir(parents=True, exist_ok=True)
    host_key = hdir / "ssh_host_ed25519_key"
    if not host_key.exists():
        _keygen(host_key, name)
    pid_file = hdir / "sshd.pid"
    pid_file.unlink(missing_ok=True)
    config = hdir / "sshd_config"
    config.write_text(
        _sshd_config(fleet.base, address, host_key, pid_file, fleet.base / "authorized_keys")
    )
    kind, key = (hdir / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    with fleet.known_hosts.open("a") as fh:
        fh.write(f"{address} {kind} {key}\n")
    steps = []
    if tmpfs:
        steps.append(f"mount -t tmpfs -o size=2g tmpfs {root}")
    steps.append(f"mount --bind {root} /srv")
    steps.append("mkdir -p /srv/www")  # the parent of test webroots
    if Path("/root/.bashrc").exists():
        steps.append(f"mount --bind {fleet.base / 'empty-bashrc'} /root/.bashrc")
    for program in without:
        found = shutil.which(program)
        if found:  # a non-executable file over the binary: `command -v` no longer finds it
            steps.append(f"mount --bind {fleet.base / 'empty-bashrc'} {Path(found).resolve()}")
    steps.append(f"hostname {name}")
    steps.append(f"exec {SSHD} -f {config}")
    subprocess.run(
        ["unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", " && ".join(steps)],
        check=True,
    )
    host = FleetHost(name=name, address=address, root=root, pid_file=pid_file)
    fleet.hosts.append(host)
    if wait:
        wait_listening(address, time.monotonic() + 20)
    return host


def restart_host(fleet: Fleet, host: FleetHost) -> None:
    """Start a killed host's sshd again with the same address, keys and /srv."""
    fleet.hosts.remove(host)
    add_host(fleet, host.name, host.address)


def start_svnserve(fleet: Fleet, root: Path, address: str) -> str:
    """Serve every repository under ``root`` read-only and anonymously; return the base URL."""
    pid_file = fleet.base / "svnserve.pid"
    pid_file.unlink(missing_ok=True)
    subprocess.run(
        [
            "svnserve",
            "-d",
            "-r",
            str(root),
            "--listen-host",
            address,
            "--listen-port",
            "3690",
            "--pid-file",
            str(pid_file),
        ],
        check=True,
    )
    fleet.services.append(pid_file)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection((address, 3690), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("svnserve did not start") from None
            time.sleep(0.02)
    return f"svn://{address}"
