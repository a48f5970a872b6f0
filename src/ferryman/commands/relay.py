"""Commands of the tiered fan-out (``transfer: {fanout: N}``, ``pipeline/relay.py``), as values.

A deploy makes its own ed25519 key pair. Its public half goes into the receiving hosts'
``authorized_keys`` with ``restrict``, a forced command, ``from=`` (the one relay that feeds
the host) and an expiry: all it can do is write at most the package's size of bytes into one
file, ``<releases>/.ferryman-relay-<deploy>/relayed``, which the deploy host's own command
then copies to a file the key cannot write and checks against the package's SHA-256 (computed
on the deploy host) before anything is unpacked from it (``accept_relayed``, ``unpack_relayed``).
The private half goes only to the relays, in a 0600 file in that per-deploy directory (0700,
the deploy user's); the directory and the key line are removed when the deploy ends.

Every value is quoted with ``shlex.quote``; a value that cannot be written safely into an
``authorized_keys`` line is refused (``ValueError``): it would be a bug upstream.
"""

from __future__ import annotations

import hashlib
import ipaddress
import posixpath
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ferryman.commands.remote import Command, Compression, Layout, bash, receive_release

q = shlex.quote
RELAY_PREFIX = ".ferryman-relay-"
RELAYED = "relayed"  # what a relay wrote (untrusted until copied and checked)
PACKAGE = "package"  # the deploy host's own copy: pushed directly, or the checked relayed one
KEY = "key"
KNOWN_HOSTS = "known_hosts"
KILL_GRACE = 5
EXIT_NOTHING_RELAYED = 94
EXIT_NOT_THE_PACKAGE = 95  # what was relayed is not the package (its SHA-256 differs)


@dataclass(frozen=True)
class Child:
    """A host a relay feeds: its place in the relay's list, and how to reach it."""

    index: int
    address: str
    port: int
    user: str


def relay_dir(layout: Layout, deploy_id: int) -> str:
    """The per-deploy directory on a host (a dot-dir beside the releases: never a release)."""
    return posixpath.join(layout.releases, f"{RELAY_PREFIX}{deploy_id}")


def marker(layout: Layout, deploy_id: int) -> str:
    """The comment ending this deploy's key line: it names the deploy and the releases dir
    (two installs deploying elsewhere on one host never remove each other's line)."""
    place = hashlib.sha256(layout.releases.encode()).hexdigest()[:12]
    return f"ferryman-relay-{place}-{deploy_id}"


def _keys_file(path: str) -> str:
    """The authorized_keys path for the shell: ``~/x`` is under ``$HOME``."""
    return f'"$HOME"/{q(path[2:])}' if path.startswith("~/") else q(path)


def _seconds(timeout: float) -> str:
    return str(max(1, round(timeout)))


def forced_receive(layout: Layout, deploy_id: int, size: int, timeout: float) -> str:
    """The only thing the relay key runs: at most ``size`` bytes of stdin into the relayed
    file, for at most ``timeout`` seconds. No ``mkdir``: once the deploy's directory is gone
    the key writes nothing anywhere."""
    target = q(posixpath.join(relay_dir(layout, deploy_id), RELAYED))
    return (
        f"umask 077; exec timeout -k {KILL_GRACE} {_seconds(timeout)} "
        f"head -c {int(size)} > {target}"
    )


def authorized_line(
    layout: Layout,
    deploy_id: int,
    public_key: str,
    *,
    size: int,
    timeout: float,
    expires: datetime,
    sources: Sequence[str],
) -> str:
    """The ``authorized_keys`` line of the relay key on a receiving host: ``restrict`` (no
    shell, pty, forwarding, agent or X11), the forced command, an expiry in UTC, and
    ``from=`` the relay addresses given — at least one, IP literals only (a name is not
    matched without DNS; a line without ``from=`` would take the key from anywhere): both
    refused here."""
    if not sources:
        raise ValueError("a relay key line names the relay it takes the package from")
    fields = public_key.split()
    if (
        len(fields) < 2
        or fields[0] != "ssh-ed25519"
        or not re.fullmatch(r"[A-Za-z0-9+/=]+", fields[1])
    ):
        raise ValueError("not an ed25519 public key")
    command = forced_receive(layout, deploy_id, size, timeout)
    if any(c in command for c in '"\\\n\r\0'):
        raise ValueError(f"cannot write this command into authorized_keys: {command!r}")
    options = ["restrict", f'command="{command}"', f'expiry-time="{expires:%Y%m%d%H%M%S}Z"']
    addresses = [str(ipaddress.ip_address(a)) for a in sources]  # ValueError for a name
    options.append(f'from="{",".join(addresses)}"')
    return f"{','.join(options)} {fields[0]} {fields[1]} {marker(layout, deploy_id)}"


HEAD = "set -euo pipefail\numask 077\n"


def _make_dir(layout: Layout, deploy_id: int) -> str:
    d = q(relay_dir(layout, deploy_id))
    return f"mkdir -p -- {q(layout.releases)}\nrm -rf -- {d}\nmkdir -m 700 -- {d}\n"


def make_dir(layout: Layout, deploy_id: int) -> Command:
    """A fresh, empty per-deploy directory (0700) on a host."""
    return bash(HEAD + _make_dir(layout, deploy_id))


def _trust(authorized_keys: str, line: str) -> str:
    """Shell lines appending ``line`` to the authorized_keys file, its directory locked
    (``flock``, where there is one) so that two deploys never rewrite it at once."""
    if any(c in line for c in "\n\r\0"):
        raise ValueError("an authorized_keys line is one line")
    return (
        f"f={_keys_file(authorized_keys)}\n"
        'if [ -L "$f" ]; then f=$(readlink -f -- "$f"); fi\n'
        'mkdir -p -m 700 -- "$(dirname -- "$f")"\n'
        'exec 9<"$(dirname -- "$f")"\n'
        "if command -v flock >/dev/null 2>&1; then flock -w 30 9; fi\n"
        'if [ -s "$f" ] && [ -n "$(tail -c 1 -- "$f")" ]; then printf \'\\n\' >> "$f"; fi\n'
        f"printf '%s\\n' {q(line)} >> \"$f\"\n"
        "exec 9<&-\n"
    )


def trust(authorized_keys: str, line: str) -> Command:
    """Append the relay key's line to ``authorized_keys`` (a new file is 0600)."""
    return bash(HEAD + _trust(authorized_keys, line))


def _drop_line(authorized_keys: str, layout: Layout, deploy_id: int) -> str:
    """A subshell removing this deploy's key line from ``authorized_keys`` (``_drop_lines``)."""
    return _drop_lines(authorized_keys, f"^restrict,.* {marker(layout, deploy_id)}$")


def sweep(authorized_keys: str, layout: Layout) -> str:
    """Shell lines removing what earlier deploys of this releases dir left of the fan-out on
    a host they could not reach at their end (a key line trusted until its expiry, a
    ``.ferryman-relay-*`` directory with a package copy, on a relay the private key): every
    such directory and every key line bearing this releases dir's marker. The probe of the
    next deploy runs them, under the project+environment lock — no other deploy of this
    releases dir runs, and this one has made nothing of its own yet."""
    place = marker(layout, 0).rpartition("-")[0]
    return f"rm -rf -- {q(layout.releases)}/{RELAY_PREFIX}*\n" + _drop_lines(
        authorized_keys,
        f"^restrict,.* {place}-[0-9]+$",  # place: [a-z0-9-] only
    )


def _drop_lines(authorized_keys: str, regex: str) -> str:
    """A subshell removing the key lines matching ``regex`` (an ERE) from
    ``authorized_keys``, only those; the file keeps its owner and mode and is replaced
    atomically, under the same lock as ``trust``. ``grep`` reads the file as bytes
    (``LC_ALL=C``, ``-a``): a NUL or a byte that is not UTF-8 anywhere in it (an old key's
    Latin-1 comment) would otherwise make it a binary file whose lines ``grep -v`` does not
    print — the rewrite would drop every other key. The new file replaces the old one only
    when it holds exactly the old lines less the matching ones."""
    pattern = q(regex)
    grep = "LC_ALL=C grep -a -E"
    return (
        "(\n"
        f"f={_keys_file(authorized_keys)}\n"
        'if [ -L "$f" ]; then f=$(readlink -f -- "$f"); fi\n'
        '[ -f "$f" ] || exit 0\n'
        # nothing to remove: no lock taken (lines of ours appear only under our deploy lock)
        f'{grep} -q -- {pattern} "$f" || exit 0\n'
        'exec 9<"$(dirname -- "$f")"\n'
        "if command -v flock >/dev/null 2>&1; then flock -w 30 9; fi\n"
        f'n=$({grep} -c -- {pattern} "$f" || true)\n'
        '[ "${n:-0}" -gt 0 ] || exit 0\n'
        't=$(mktemp -- "$f.XXXXXX")\n'
        "trap 'rm -f -- \"$t\"' EXIT\n"
        'cp -p -- "$f" "$t"\n'
        f'{grep} -v -- {pattern} "$f" > "$t" || [ $? -eq 1 ]\n'
        # lines counted as grep sees them (a last line without a newline counts too)
        f'before=$({grep} -c -- "" "$f"); after=$({grep} -c -- "" "$t" || true)\n'
        'if [ "$after" -ne $((before - n)) ]; then\n'
        '  echo "authorized_keys left as it was: its rewrite lost lines" >&2; exit 1\n'
        "fi\n"
        'mv -f -- "$t" "$f"\n'
        ")\n"
    )


def revoke(
    authorized_keys: str, layout: Layout, deploy_id: int, *, keep_package: bool = False
) -> Command:
    """Remove this deploy's key line from ``authorized_keys`` and its directory — private
    key, known_hosts and packages; with ``keep_package``, all but the host's own checked copy
    of the package. Safe to run again, and on a host that never had either."""
    d = relay_dir(layout, deploy_id)
    files = " ".join(q(posixpath.join(d, name)) for name in (KEY, KNOWN_HOSTS, RELAYED))
    remove = f"rm -f -- {files}" if keep_package else f"rm -rf -- {q(d)}"
    return bash(HEAD + f"{remove}\n" + _drop_line(authorized_keys, layout, deploy_id))


def _arm(layout: Layout, deploy_id: int, known_hosts: str) -> str:
    d = relay_dir(layout, deploy_id)
    return (
        f"cat > {q(posixpath.join(d, KEY))}\n"
        f"printf '%s' {q(known_hosts)} > {q(posixpath.join(d, KNOWN_HOSTS))}\n"
    )


def arm(layout: Layout, deploy_id: int, known_hosts: str) -> Command:
    """On a relay: the private key from stdin into a 0600 file, and a known_hosts file with
    exactly the host keys of the hosts it feeds."""
    return bash(HEAD + _arm(layout, deploy_id, known_hosts))


def setup(
    layout: Layout,
    deploy_id: int,
    authorized_keys: str,
    *,
    line: str | None = None,
    known_hosts: str | None = None,
) -> Command:
    """One command per host before the package moves: the fresh directory (``make_dir``);
    on a receiving host, the key's ``line`` trusted (``trust``); on a relay, the private key
    from stdin and the ``known_hosts`` of the hosts it feeds (``arm``)."""
    script = HEAD + _make_dir(layout, deploy_id)
    if line is not None:
        script += _trust(authorized_keys, line)
    if known_hosts is not None:
        script += _arm(layout, deploy_id, known_hosts)
    return bash(script)


def store_package(layout: Layout, deploy_id: int) -> Command:
    """The package pushed directly by the deploy host, from stdin into the host's copy."""
    package = q(posixpath.join(relay_dir(layout, deploy_id), PACKAGE))
    return bash(f"{HEAD}cat > {package}\n")


def accept_relayed(layout: Layout, deploy_id: int, size: int, authorized_keys: str) -> Command:
    """Copy what was relayed (at most ``size`` bytes) into the host's own copy, remove the
    key's line (this host needs it no more) and print the copy's SHA-256: the key cannot
    write the copy, so what is checked is what is unpacked. Exit ``EXIT_NOTHING_RELAYED``
    when nothing arrived."""
    d = relay_dir(layout, deploy_id)
    relayed, package = q(posixpath.join(d, RELAYED)), q(posixpath.join(d, PACKAGE))
    return bash(
        HEAD + f"[ -f {relayed} ] && [ ! -L {relayed} ] || exit {EXIT_NOTHING_RELAYED}\n"
        f"rm -f -- {package}\n"
        f"head -c {int(size)} -- {relayed} > {package}\n"
        f"rm -f -- {relayed}\n"
        + _drop_line(authorized_keys, layout, deploy_id)
        + f"sha256sum -- {package}\n"
    )


def parse_digest(stdout: str) -> str:
    """The hex digest ``accept_relayed`` printed ("" when there is none)."""
    first = stdout.split()[:1]
    return first[0] if first and re.fullmatch(r"[0-9a-f]{64}", first[0]) else ""


def unpack_package(layout: Layout, name: str, compression: Compression, deploy_id: int) -> Command:
    """Make the release from the host's copy of the package (``receive_release`` with its
    stdin from that file), then remove the deploy's directory."""
    script = receive_release(layout, name, compression)[2]
    d = relay_dir(layout, deploy_id)
    package = q(posixpath.join(d, PACKAGE))
    return bash(f"{HEAD}bash -c {q(script)} < {package}\nrm -rf -- {q(d)}\n")


def unpack_relayed(
    layout: Layout,
    name: str,
    compression: Compression,
    deploy_id: int,
    *,
    size: int,
    digest: str,
    authorized_keys: str,
) -> Command:
    """On a host no one is fed from: copy what was relayed into the host's own copy, remove
    the key's line, check the copy's SHA-256 against the package's ``digest`` (given by the
    deploy host), and only then make the release from it (``unpack_package``). Exit
    ``EXIT_NOTHING_RELAYED`` or ``EXIT_NOT_THE_PACKAGE`` before anything is unpacked."""
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError("not a SHA-256 hex digest")
    d = relay_dir(layout, deploy_id)
    relayed, package = q(posixpath.join(d, RELAYED)), q(posixpath.join(d, PACKAGE))
    script = receive_release(layout, name, compression)[2]
    return bash(
        HEAD + f"[ -f {relayed} ] && [ ! -L {relayed} ] || exit {EXIT_NOTHING_RELAYED}\n"
        f"rm -f -- {package}\n"
        f"head -c {int(size)} -- {relayed} > {package}\n"
        f"rm -f -- {relayed}\n"
        + _drop_line(authorized_keys, layout, deploy_id)
        + f"sum=$(sha256sum < {package})\n"
        f'[ "${{sum%% *}}" = {digest} ] || exit {EXIT_NOT_THE_PACKAGE}\n'
        f"bash -c {q(script)} < {package}\n"
        f"rm -rf -- {q(d)}\n"
    )


def forward(
    layout: Layout,
    deploy_id: int,
    children: Sequence[Child],
    *,
    timeout: float,
    connect_timeout: float,
    bind: str | None = None,
) -> Command:
    """On a relay: send its copy of the package to every child at once with OpenSSH, using
    the deploy's key and known_hosts only (never a user's config, agent or keys; host keys
    strictly checked), bound to ``bind`` (its own address, which the children's ``from=``
    names). Prints ``relay<TAB>index<TAB>exit status`` for each child, then removes the
    key and known_hosts files."""
    d = relay_dir(layout, deploy_id)
    options = [
        "-F", "/dev/null",
        "-T",
        "-i", posixpath.join(d, KEY),
        "-o", "IdentitiesOnly=yes",
        "-o", "IdentityAgent=none",
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={posixpath.join(d, KNOWN_HOSTS)}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "UpdateHostKeys=no",
        "-o", "PasswordAuthentication=no",
        "-o", "KbdInteractiveAuthentication=no",
        "-o", "ForwardAgent=no",
        "-o", "ClearAllForwardings=yes",
        "-o", "ControlMaster=no",
        "-o", "ControlPath=none",
        "-o", f"ConnectTimeout={_seconds(connect_timeout)}",
        "-o", "ServerAliveInterval=15",
        "-o", "ServerAliveCountMax=4",
        "-o", "LogLevel=ERROR",
    ]  # fmt: skip
    if bind is not None:
        options += ["-o", f"BindAddress={ipaddress.ip_address(bind)}"]
    lines = [
        "set -u",
        f"package={q(posixpath.join(d, PACKAGE))}",
        "send() {",
        "  local i=$1; shift",
        f'  timeout -k {KILL_GRACE} {_seconds(timeout)} "$@" < "$package"',
        '  printf \'relay\\t%s\\t%s\\n\' "$i" "$?"',
        "}",
    ]
    for child in children:
        argv = ["ssh", *options, "-p", str(child.port), "-l", child.user, "--", child.address]
        lines.append(f"send {child.index} {shlex.join([*argv, 'receive'])} &")
    lines.append("wait")
    keys = " ".join(q(posixpath.join(d, name)) for name in (KEY, KNOWN_HOSTS))
    lines.append(f"rm -f -- {keys}")  # the relay's part is done: its key goes
    return bash("\n".join(lines) + "\n")


def parse_forward(stdout: str) -> dict[int, int]:
    """Each child's exit status as ``forward`` printed it (a child not named: not sent)."""
    found: dict[int, int] = {}
    for line in stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0] == "relay" and parts[1].isdigit() and parts[2].isdigit():
            found[int(parts[1])] = int(parts[2])
    return found


def known_hosts_line(address: str, port: int, key: str) -> str:
    """A known_hosts line for a host key (``[address]:port`` when the port is not 22)."""
    fields = key.split()
    if len(fields) < 2 or any(c.isspace() or c in ",*?!" for c in address):
        raise ValueError(f"not a host key line for {address!r}")
    host = address if port == 22 else f"[{address}]:{port}"
    return f"{host} {fields[0]} {fields[1]}\n"
