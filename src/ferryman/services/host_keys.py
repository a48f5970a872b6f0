"""Pinning SSH host keys: a master asks the server or repository host for its key, compares
the fingerprint with what they know out of band, and pins exactly that key. Deploys then accept
that key and no other (``remote.executor``); repository hosts the same way per space.

No free ``known_hosts`` paths: what is trusted lives in the database, per server and per space.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncssh

from ferryman.db.models import Server, Space
from ferryman.db.session import Database
from ferryman.domain import validate
from ferryman.errors import Conflict, RemoteError, ValidationError
from ferryman.services.audit import Actor, record
from ferryman.services.authz import hidden, require
from ferryman.services.spaces import visible_space

SCAN_TIMEOUT = 10.0


async def scan(address: str, port: int, what: str) -> asyncssh.SSHKey:
    """The host key ``address:port`` presents (no authentication is attempted)."""
    try:
        key = await asyncio.wait_for(
            asyncssh.get_server_host_key(address, port, config=[]),
            timeout=SCAN_TIMEOUT + 2,
        )
    except (TimeoutError, asyncssh.Error, OSError) as exc:
        raise RemoteError(
            f"cannot read the host key: {exc or type(exc).__name__}", host=what, stage="trust"
        ) from None
    if key is None:
        raise RemoteError("the host presented no key", host=what, stage="trust")
    return key


def _line(key: asyncssh.SSHKey) -> str:
    return key.export_public_key("openssh").decode().split()[0] + " " + _body(key)


def _body(key: asyncssh.SSHKey) -> str:
    return key.export_public_key("openssh").decode().split()[1]


def _parse_key(text: str) -> asyncssh.SSHKey:
    try:
        return asyncssh.import_public_key(text.strip())
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise ValidationError(f"key: not an SSH public key ({exc})") from None


def _server(db: Database, actor: Actor, server_id: int, action: str) -> Server:
    with db.read() as s:
        server = s.get(Server, server_id)
        if server is None:
            raise hidden(f"server #{server_id}")
        require(s, actor, action, space_id=server.space_id, what=f"server #{server_id}")
        s.expunge(server)
        return server


async def server_key(db: Database, actor: Actor, server_id: int) -> dict[str, Any]:
    """What the server presents now, and what is pinned."""
    from ferryman.services.inventory import fingerprints

    server = await asyncio.to_thread(_server, db, actor, server_id, "server.trust")
    out: dict[str, Any] = {
        "server": server.name,
        "host": _key(server),
        "presented": None,
        "algorithm": None,
        "error": None,
        "pinned": fingerprints(server.host_key),
    }
    try:
        key = await scan(server.address, server.port, _key(server))
    except RemoteError as exc:
        out["error"] = exc.message
        return out
    out["presented"] = key.get_fingerprint("sha256")
    out["algorithm"] = key.get_algorithm()
    return out


async def trust_server(
    db: Database, actor: Actor, server_id: int, fingerprint: str = "", key: str = ""
) -> dict[str, Any]:
    """Pin the server's host key: the one it presents now, which must have ``fingerprint``;
    or ``key`` given out of band (an ``ssh-ed25519 AAAA…`` line)."""
    if not fingerprint and not key:
        raise ValidationError("give the fingerprint you expect, or the key itself")
    server = await asyncio.to_thread(_server, db, actor, server_id, "server.trust")
    if key:
        chosen = _parse_key(key)
        if fingerprint and chosen.get_fingerprint("sha256") != fingerprint:
            raise ValidationError("fingerprint: does not match the key given")
    else:
        chosen = await scan(server.address, server.port, _key(server))
        if chosen.get_fingerprint("sha256") != fingerprint.strip():
            raise Conflict(
                f"{_key(server)} presents {chosen.get_fingerprint('sha256')}, not "
                f"{fingerprint}: nothing pinned (check the host before trusting it)"
            )

    def pin() -> dict[str, Any]:
        from ferryman.services.inventory import server_dict

        with db.transaction() as s:
            row = s.get(Server, server_id)
            if row is None:
                raise hidden(f"server #{server_id}")
            require(s, actor, "server.trust", space_id=row.space_id, what=f"server #{server_id}")
            if (row.address, row.port) != (server.address, server.port):
                raise Conflict(f"server {row.name} changed address meanwhile; trust it again")
            before = row.host_key
            row.host_key = _line(chosen)
            record(
                s,
                actor,
                "server.trust",
                f"server:{row.name}",
                space_id=row.space_id,
                fingerprint=chosen.get_fingerprint("sha256"),
                replaced=bool(before and before != row.host_key),
            )
            return server_dict(row)

    return await asyncio.to_thread(pin)


def _key(server: Server) -> str:
    return validate.HostSpec(server.address, server.port).key


# --- repository hosts, per space -----------------------------------------------------------


def _known_hosts_name(spec: validate.HostSpec) -> str:
    return spec.address if spec.port == 22 else f"[{spec.address}]:{spec.port}"


def repo_hosts(db: Database, actor: Actor, space: int | str) -> list[dict[str, str]]:
    with db.read() as s:
        sp = visible_space(s, actor, space, "server.read")
        return _entries(sp.repo_known_hosts)


def _entries(text: str) -> list[dict[str, str]]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            try:
                fp = asyncssh.import_public_key(" ".join(parts[1:3])).get_fingerprint("sha256")
            except (asyncssh.KeyImportError, ValueError):
                fp = "unreadable"
            out.append({"host": parts[0], "algorithm": parts[1], "fingerprint": fp})
    return out


async def trust_repo_host(
    db: Database,
    actor: Actor,
    space: int | str,
    host: str,
    fingerprint: str = "",
    key: str = "",
) -> list[dict[str, str]]:
    """Pin the host key of a repository host (``git.example.com`` or ``[host]:2222``) for
    the space's checkouts. Without ``fingerprint`` and ``key``: only report what it presents."""
    spec = validate.host(host)
    if spec.user:
        raise ValidationError("host: no user here, only address[:port]")

    def check() -> None:
        with db.read() as s:
            sp = visible_space(s, actor, space, "server.trust")
            require(s, actor, "server.trust", space_id=sp.id)

    await asyncio.to_thread(check)
    if key:
        chosen = _parse_key(key)
        if fingerprint and chosen.get_fingerprint("sha256") != fingerprint:
            raise ValidationError("fingerprint: does not match the key given")
    else:
        chosen = await scan(spec.address, spec.port, spec.key)
        presented = chosen.get_fingerprint("sha256")
        if not fingerprint:
            return [{"host": spec.key, "algorithm": chosen.get_algorithm(), "presented": presented}]
        if presented != fingerprint.strip():
            raise Conflict(f"{spec.key} presents {presented}, not {fingerprint}: nothing pinned")
    name = _known_hosts_name(spec)
    entry = f"{name} {_line(chosen)}"

    def pin() -> list[dict[str, str]]:
        with db.transaction() as s:
            sp = visible_space(s, actor, space, "server.trust")
            require(s, actor, "server.trust", space_id=sp.id)
            lines = [
                line for line in sp.repo_known_hosts.splitlines() if line.split()[:1] != [name]
            ]
            sp.repo_known_hosts = "\n".join([*lines, entry]) + "\n"
            record(
                s,
                actor,
                "repo_host.trust",
                f"space:{sp.name}/repo-host:{spec.key}",
                space_id=sp.id,
                fingerprint=chosen.get_fingerprint("sha256"),
            )
            return _entries(sp.repo_known_hosts)

    return await asyncio.to_thread(pin)


def space_key(db: Database, actor: Actor, space: int | str) -> tuple[int, bool, str]:
    """(id, uses the server's key, name) of a space the actor may read."""
    with db.read() as s:
        sp: Space = visible_space(s, actor, space, "server.read")
        return sp.id, sp.uses_server_key, sp.name
