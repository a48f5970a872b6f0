"""Pure rules of a space's inventory: the server a literal host becomes, and which servers an
environment of a project targets. Used by the services and by migration 0013 alike."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ferryman.domain import validate
from ferryman.errors import ValidationError


@dataclass(frozen=True)
class ServerRef:
    """What a project environment needs to know of a server."""

    name: str
    address: str
    port: int
    user: str
    labels: tuple[str, ...]

    @property
    def key(self) -> str:
        return validate.HostSpec(self.address, self.port).key


def server_name_for(spec: validate.HostSpec, taken: Iterable[str]) -> str:
    """A server name for a literal host (``10.0.0.13``, ``web1.example.com-2222``), unique
    among ``taken``."""
    base = re.sub(r"[^A-Za-z0-9._-]", "-", spec.address).strip("-._") or "host"
    if spec.port != 22:
        base = f"{base}-{spec.port}"
    base = base[:56]
    if not base[0].isalnum():
        base = "h" + base[:55]
    used = set(taken)
    name, n = base, 2
    while name in used:
        name = f"{base}-{n}"
        n += 1
    return name


def match_literal(spec: validate.HostSpec, servers: Iterable[ServerRef]) -> ServerRef | None:
    """The server a literal ``hosts:`` entry is: same address and port."""
    for server in servers:
        if server.address == spec.address and server.port == spec.port:
            return server
    return None


def targeted(env: Mapping[str, Any], servers: list[ServerRef]) -> list[ServerRef]:
    """The servers one environment of a stored project config reaches, in config order:
    literal hosts (matched by address and port), named servers, then labelled ones."""
    out: list[ServerRef] = []
    by_name = {s.name: s for s in servers}
    for raw in env.get("hosts", []) or []:
        try:
            spec = validate.host(raw)
        except ValidationError:  # stored configs were validated when applied
            continue
        found = match_literal(spec, servers)
        if found is not None and found not in out:
            out.append(found)
    for name in env.get("servers", []) or []:
        if name in by_name and by_name[name] not in out:
            out.append(by_name[name])
    wanted = set(env.get("labels", []) or [])
    if wanted:
        out += [s for s in servers if wanted <= set(s.labels) and s not in out]
    return out
