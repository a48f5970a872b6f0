"""What an environment claims on each of its hosts, and when two claims collide — pure.

An environment owns its webroot link, its releases dir and the shared paths it links into
each release (``<shared_dir>/<path>``). Two environments (of one project or two) whose claims
on the same host are equal or one inside the other would tread on each other: one's pruning
removes the other's live releases, one's switch replaces the other's site, both write one
``shared/uploads``. ``services/overlap.py`` refuses such a configuration when it is applied.

Which hosts are one host is decided here too, without asking any resolver (``same_host``,
``is_deploy_host``): one address written several ways is one host, and the deploy host
itself — ``hosts: [local]`` — is also every way its own loopback is written.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ferryman.domain import validate
from ferryman.domain.local_paths import LOCAL
from ferryman.errors import ValidationError
from ferryman.said import said

_NUMERIC = re.compile(r"(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}")
THIS_HOST = frozenset({"127.0.0.1", "::1"})
_UNSPECIFIED = frozenset({"0.0.0.0", "::"})  # noqa: S104 (compared, never bound)


@dataclass(frozen=True)
class Claim:
    what: str  # "webroot", "releases dir", "shared path" (``said``: the UI says it in zh)
    path: str


def default_shared_dir(releases: str, project: str, env: str) -> str:
    """Where shared paths live when ``shared_dir`` is not given: beside the releases dir,
    one directory per project and environment (``/srv/releases/shared/<project>/<env>``)."""
    return posixpath.join(posixpath.dirname(releases.rstrip("/")), "shared", project, env)


def shared_dir(given: str | None, releases: str, project: str, env: str) -> str:
    return given or default_shared_dir(releases, project, env)


def claims(webroot: str, releases: str, shared_root: str, shared: Sequence[str]) -> list[Claim]:
    """Everything an environment writes on a host outside its releases: the webroot link,
    the releases dir, and each shared path (only those: a shared dir with no shared paths
    is never touched)."""
    found = [Claim(said("webroot"), webroot), Claim(said("releases dir"), releases)]
    found += [Claim(said("shared path"), posixpath.join(shared_root, p)) for p in shared]
    return found


def overlap(a: str, b: str) -> bool:
    """The same path, or one inside the other (``/srv/a`` and ``/srv/a/b``; not ``/srv/ab``)."""
    a, b = a.rstrip("/") or "/", b.rstrip("/") or "/"
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def collisions(mine: Iterable[Claim], theirs: Iterable[Claim]) -> list[tuple[Claim, Claim]]:
    """Every pair of a claim of ``mine`` and one of ``theirs`` that overlap."""
    others = list(theirs)
    return [(a, b) for a in mine for b in others if overlap(a.path, b.path)]


def renamed_paths(data: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """Project file ``data`` with every path component ``old`` of its environments' webroot,
    releases and shared dir made ``new`` (``/srv/www/site`` → ``/srv/www/site-copy``): what
    a copy named ``new`` of project ``old`` writes, apart from the original's paths."""
    environments: dict[str, Any] = {}
    for name, env in (data.get("environments") or {}).items():
        changed = dict(env) if isinstance(env, dict) else env
        if isinstance(changed, dict):
            for key in ("webroot", "releases", "shared_dir"):
                value = changed.get(key)
                if isinstance(value, str):
                    parts = value.split("/")
                    changed[key] = "/".join(new if part == old else part for part in parts)
        environments[name] = changed
    return {**data, "environments": environments}


def same_host(spec: validate.HostSpec) -> set[str]:
    """The keys one host is known by, found without asking any resolver: an address written
    another way (``127.1``, ``0x7f.0.0.1``, ``::ffff:127.0.0.1``, ``::0001``) is its one
    literal form, and ``localhost`` (and ``*.localhost``, RFC 6761) is ``127.0.0.1`` and
    ``::1`` — as are those two written literally and ``0.0.0.0`` and ``::``, which a
    connection reaches as the local host. Other names stay as written: a DNS name and the
    address it resolves to are not matched, since finding out would send a lookup to the
    network."""
    return {validate.HostSpec(form, spec.port).key for form in _forms(spec.address)}


def is_deploy_host(key: str) -> bool:
    """Whether a host key (``same_host``'s, or ``local``) is the deploy host itself: ``local``,
    or its own loopback however written, on any port — an sshd there serves the deploy host's
    own files, the ones ``hosts: [local]`` writes. Another loopback address (``127.0.0.9``)
    is another host: each can be an sshd in a namespace of its own (as this project's test
    fleet is)."""
    if key == LOCAL:
        return True
    try:
        spec = validate.host(key)
    except ValidationError:
        return False
    return bool(_forms(spec.address) & THIS_HOST)


def _forms(address: str) -> set[str]:
    """The canonical address forms one written address is."""
    address = address.lower().rstrip(".")
    if address == "localhost" or address.endswith(".localhost"):
        return set(THIS_HOST)
    literal = _literal(address)
    # the deploy host's own loopback, and the unspecified addresses a connection reaches
    # it by (Linux): one host however it is written, as ``localhost`` is
    return set(THIS_HOST) if literal in THIS_HOST | _UNSPECIFIED else {literal}


def _literal(address: str) -> str:
    """An IP address in its one canonical form; anything else as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        if not _NUMERIC.fullmatch(address):
            return address
        try:  # the forms inet_aton (and so ssh) reads as IPv4: 127.1, 2130706433, 0x7f.1
            return socket.inet_ntoa(socket.inet_aton(address))
        except OSError:
            return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)
