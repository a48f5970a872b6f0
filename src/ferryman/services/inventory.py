"""A space's environments (with variables and the approval flag) and servers (with labels)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from ferryman.db.models import Environment, Project, Server
from ferryman.db.session import Database
from ferryman.domain import validate
from ferryman.domain.masking import MASK
from ferryman.domain.variables import NAMES as RESERVED_VARIABLES
from ferryman.errors import Conflict, ValidationError
from ferryman.said import said
from ferryman.secretbox import is_sealed
from ferryman.services.audit import Actor, record
from ferryman.services.authz import hidden, require, visible_space_ids
from ferryman.services.spaces import visible_space

# --- environments ---------------------------------------------------------------------------


def environment_dict(env: Environment) -> dict[str, Any]:
    """Secret variables are shown as ``***``; their values never leave the server."""
    secret = set(env.secrets or [])
    return {
        "id": env.id,
        "space_id": env.space_id,
        "name": env.name,
        "description": env.description,
        "variables": {k: MASK if k in secret else v for k, v in env.variables.items()},
        "secrets": sorted(secret),
        "requires_approval": env.requires_approval,
    }


def _sealed(db: Database, variables: dict[str, str], secrets: list[str]) -> dict[str, str]:
    """Secret values encrypted at rest; the others as they are."""
    return {
        k: db.box.seal(v) if k in secrets and not is_sealed(v) else v for k, v in variables.items()
    }


def _check_secrets(variables: dict[str, str], secrets: list[str]) -> list[str]:
    missing = [name for name in secrets if name not in variables]
    if missing:
        raise ValidationError(
            said("secrets: not variables of this environment: %(names)s", names=missing)
        )
    return sorted(set(secrets))


def _environment(s: Session, actor: Actor, env_id: int, action: str) -> Environment:
    env = s.get(Environment, env_id)
    if env is None:
        raise hidden(f"environment #{env_id}")
    require(s, actor, action, space_id=env.space_id, what=f"environment #{env_id}")
    return env


def list_environments(
    db: Database, actor: Actor, space: int | str | None = None
) -> list[dict[str, Any]]:
    with db.read() as s:
        stmt = select(Environment).order_by(Environment.space_id, Environment.id)
        if space is not None:
            stmt = stmt.where(
                Environment.space_id == visible_space(s, actor, space, "environment.read").id
            )
        else:
            ids = visible_space_ids(s, actor)
            if ids is not None:
                stmt = stmt.where(Environment.space_id.in_(ids))
        return [environment_dict(e) for e in s.scalars(stmt)]


def get_environment(db: Database, actor: Actor, env_id: int) -> dict[str, Any]:
    with db.read() as s:
        return environment_dict(_environment(s, actor, env_id, "environment.read"))


def space_environment(s: Session, space_id: int, name: str) -> Environment | None:
    return s.scalar(
        select(Environment).where(Environment.space_id == space_id, Environment.name == name)
    )


def create_environment(
    db: Database,
    actor: Actor,
    space: int | str,
    name: str,
    *,
    description: str = "",
    variables: dict[str, str] | None = None,
    secrets: list[str] | None = None,
    requires_approval: bool = False,
) -> dict[str, Any]:
    validate.name(name, "environment name")
    validate.variables(variables or {}, RESERVED_VARIABLES)
    secret_names = _check_secrets(variables or {}, secrets or [])
    with db.transaction() as s:
        sp = visible_space(s, actor, space, "environment.manage")
        if space_environment(s, sp.id, name) is not None:
            raise Conflict(
                said(
                    "space %(space)s already has an environment %(name)s",
                    space=sp.name,
                    name=repr(name),
                )
            )
        env = Environment(
            space_id=sp.id,
            name=name,
            description=description,
            variables=_sealed(db, variables or {}, secret_names),
            secrets=secret_names,
            requires_approval=requires_approval,
        )
        s.add(env)
        s.flush()
        record(
            s,
            actor,
            "environment.create",
            f"space:{sp.name}/env:{name}",
            space_id=sp.id,
            after=environment_dict(env),
        )
        return environment_dict(env)


def update_environment(
    db: Database,
    actor: Actor,
    env_id: int,
    *,
    description: str | None = None,
    variables: dict[str, str] | None = None,
    secrets: list[str] | None = None,
    requires_approval: bool | None = None,
) -> dict[str, Any]:
    """Change fields given. A secret variable sent back as ``***`` keeps its stored value."""
    if variables is not None:
        validate.variables(variables, RESERVED_VARIABLES)
    with db.transaction() as s:
        env = _environment(s, actor, env_id, "environment.manage")
        before = environment_dict(env)
        if description is not None:
            env.description = description
        if variables is not None:
            old = env.variables
            env.variables = {
                k: old[k] if v == MASK and k in (env.secrets or []) and k in old else v
                for k, v in variables.items()
            }
        if secrets is not None:
            env.secrets = _check_secrets(env.variables, secrets)
        elif variables is not None:  # a removed variable is no longer a secret
            env.secrets = [n for n in env.secrets or [] if n in env.variables]
        plain = {k: db.box.open(v) if is_sealed(v) else v for k, v in env.variables.items()}
        env.variables = _sealed(db, plain, env.secrets or [])
        if requires_approval is not None:
            env.requires_approval = requires_approval
        after = environment_dict(env)
        record(
            s,
            actor,
            "environment.update",
            f"env:{env.name}",
            space_id=env.space_id,
            before=before,
            after=after,
        )
        return after


def delete_environment(db: Database, actor: Actor, env_id: int) -> None:
    with db.transaction() as s:
        env = _environment(s, actor, env_id, "environment.manage")
        users = [
            p.name
            for p in s.scalars(select(Project).where(Project.space_id == env.space_id))
            if env.name in p.config.get("environments", {})
        ]
        if users:
            raise Conflict(
                said(
                    "environment %(env)s is used by project(s) %(projects)s",
                    env=env.name,
                    projects=sorted(users),
                )
            )
        s.delete(env)
        record(
            s,
            actor,
            "environment.delete",
            f"env:{env.name}",
            space_id=env.space_id,
            before=environment_dict(env),
        )


# --- servers --------------------------------------------------------------------------------


def server_dict(server: Server) -> dict[str, Any]:
    return {
        "id": server.id,
        "space_id": server.space_id,
        "name": server.name,
        "address": server.address,
        "port": server.port,
        "user": server.user,
        "labels": server.labels,
        "description": server.description,
        "host": server_host(server),
        "environments": list(server.environments or []),
        "host_key": fingerprints(server.host_key),
    }


def fingerprints(key_lines: str) -> list[str]:
    """SHA256 fingerprints of pinned key lines (what people compare; keys stay server-side)."""
    import asyncssh

    out = []
    for line in key_lines.splitlines():
        try:
            out.append(asyncssh.import_public_key(line).get_fingerprint("sha256"))
        except (asyncssh.KeyImportError, ValueError):
            out.append("unreadable")
    return out


def _check_environments(s: Session, space_id: int, names: list[str]) -> list[str]:
    known = {e.name for e in s.scalars(select(Environment).where(Environment.space_id == space_id))}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ValidationError(said("environments: the space has no %(names)s", names=unknown))
    return sorted(set(names))


def server_host(server: Server) -> str:
    """The server as a ``[user@]address[:port]`` host spec (the key used in deploy records)."""
    spec = validate.HostSpec(server.address, server.port, server.user or None)
    return str(spec)


def _check_server(address: str, port: int, user: str, labels: list[str]) -> str:
    """Validate a server's fields; returns the bare address (IPv6 without brackets)."""
    spec = validate.host(address)
    if spec.user is not None or validate.HostSpec(spec.address).key != address:
        raise ValidationError(
            said(
                "address: give only the address (port and user apart): %(address)s",
                address=repr(address),
            )
        )
    if not 0 < port < 65536:
        raise ValidationError(said("port: not a port: %(port)s", port=port))
    if user:
        validate.username(user)
    if len(labels) > 50:
        raise ValidationError(said("labels: at most 50"))
    for item in labels:
        validate.label(item)
    return spec.address


def _server(s: Session, actor: Actor, server_id: int, action: str) -> Server:
    server = s.get(Server, server_id)
    if server is None:
        raise hidden(f"server #{server_id}")
    require(s, actor, action, space_id=server.space_id, what=f"server #{server_id}")
    return server


def list_servers(
    db: Database, actor: Actor, space: int | str | None = None, label: str | None = None
) -> list[dict[str, Any]]:
    with db.read() as s:
        stmt = select(Server).order_by(Server.space_id, Server.name)
        if space is not None:
            stmt = stmt.where(Server.space_id == visible_space(s, actor, space, "server.read").id)
        else:
            ids = visible_space_ids(s, actor)
            if ids is not None:
                stmt = stmt.where(Server.space_id.in_(ids))
        rows = [server_dict(x) for x in s.scalars(stmt)]
        return [r for r in rows if label is None or label in r["labels"]]


def get_server(db: Database, actor: Actor, server_id: int) -> dict[str, Any]:
    with db.read() as s:
        return server_dict(_server(s, actor, server_id, "server.read"))


def create_server(
    db: Database,
    actor: Actor,
    space: int | str,
    name: str,
    address: str,
    *,
    port: int = 22,
    user: str = "",
    labels: list[str] | None = None,
    description: str = "",
    environments: list[str] | None = None,
) -> dict[str, Any]:
    """A server of the space; ``environments`` are those it serves (a deploy touching it needs
    their approval)."""
    validate.name(name, "server name")
    address = _check_server(address, port, user, labels or [])
    with db.transaction() as s:
        sp = visible_space(s, actor, space, "server.manage")
        if s.scalar(select(Server).where(Server.space_id == sp.id, Server.name == name)):
            raise Conflict(
                said(
                    "space %(space)s already has a server %(name)s", space=sp.name, name=repr(name)
                )
            )
        server = Server(
            space_id=sp.id,
            name=name,
            address=address,
            port=port,
            user=user,
            labels=sorted(set(labels or [])),
            description=description,
            environments=_check_environments(s, sp.id, environments or []),
            host_key="",
        )
        s.add(server)
        s.flush()
        from ferryman.services.overlap import refuse_for_server

        refuse_for_server(s, actor, server)  # its labels may aim an environment at it
        record(
            s,
            actor,
            "server.create",
            f"space:{sp.name}/server:{name}",
            space_id=sp.id,
            after=server_dict(server),
        )
        return server_dict(server)


def update_server(db: Database, actor: Actor, server_id: int, **changes: Any) -> dict[str, Any]:
    """Change any of address, port, user, labels, description, environments. A new address
    or port forgets the pinned host key (it was the old host's)."""
    with db.transaction() as s:
        server = _server(s, actor, server_id, "server.manage")
        before = server_dict(server)
        merged = {**before, **{k: v for k, v in changes.items() if v is not None}}
        if "address" in changes and changes["address"] is not None:
            merged["address"] = _check_server(
                merged["address"], merged["port"], merged["user"], merged["labels"]
            )
        else:
            _check_server(
                validate.HostSpec(server.address).key,
                merged["port"],
                merged["user"],
                merged["labels"],
            )
        if (merged["address"], merged["port"]) != (server.address, server.port):
            server.host_key = ""
        for key in ("address", "port", "user", "description"):
            setattr(server, key, merged[key])
        if changes.get("environments") is not None:
            server.environments = _check_environments(
                s, server.space_id, list(changes["environments"])
            )
        server.labels = sorted(set(merged["labels"]))
        s.flush()
        from ferryman.services.overlap import refuse_for_server

        refuse_for_server(s, actor, server)  # a new address or labels: on another's paths?
        after = server_dict(server)
        record(
            s,
            actor,
            "server.update",
            f"server:{server.name}",
            space_id=server.space_id,
            before=before,
            after=after,
        )
        return after


def delete_server(db: Database, actor: Actor, server_id: int) -> None:
    """Remove a server no project names (by address or by name; labels select whoever has
    them, so a labelled server may go)."""
    from ferryman.domain import inventory as rules

    with db.transaction() as s:
        server = _server(s, actor, server_id, "server.manage")
        ref = rules.ServerRef(server.name, server.address, server.port, server.user or "", ())
        users = sorted(
            p.name
            for p in s.scalars(select(Project).where(Project.space_id == server.space_id))
            for env in (p.config.get("environments") or {}).values()
            if ref in rules.targeted({**env, "labels": []}, [ref])
        )
        if users:
            raise Conflict(
                f"server {server.name} is named by project(s) {', '.join(sorted(set(users)))}; "
                "take it out of their hosts or servers first"
            )
        s.delete(server)
        record(
            s,
            actor,
            "server.delete",
            f"server:{server.name}",
            space_id=server.space_id,
            before=server_dict(server),
        )


def servers_of_space(s: Session, space_id: int) -> list[Server]:
    return list(s.scalars(select(Server).where(Server.space_id == space_id)))


def servers_for(s: Session, space_id: int, environments: Mapping[str, Any]) -> list[Server]:
    """The servers of a space that ``environments`` (a stored project's) can name: by
    address (a literal host), by name, or — when any environment picks servers by label —
    every one. A page or a deploy of a project with literal hosts in a space of a thousand
    servers reads a handful of rows, not the inventory."""
    addresses: set[str] = set()
    names: set[str] = set()
    for env in environments.values():
        if env.get("labels"):
            return servers_of_space(s, space_id)
        addresses.update(validate.host(raw).address for raw in env.get("hosts", []))
        names.update(env.get("servers", []))
    if not addresses and not names:
        return []
    return list(
        s.scalars(
            select(Server).where(
                Server.space_id == space_id,
                or_(Server.address.in_(sorted(addresses)), Server.name.in_(sorted(names))),
            )
        )
    )


def server_page(
    db: Database, actor: Actor, space: int | str, *, after: str = "", limit: int = 100
) -> tuple[list[dict[str, Any]], int]:
    """One page of a space's servers by name (those after ``after``), and how many it has:
    the Servers page of a large inventory reads a hundred, not every one."""
    with db.read() as s:
        space_id = visible_space(s, actor, space, "server.read").id
        total = s.scalar(
            select(func.count()).select_from(Server).where(Server.space_id == space_id)
        )
        stmt = select(Server).where(Server.space_id == space_id, Server.name > after)
        rows = s.scalars(stmt.order_by(Server.name).limit(limit))
        return [server_dict(x) for x in rows], int(total or 0)


def server_names(db: Database, actor: Actor, space: int | str) -> dict[str, str]:
    """{host key: server name} for a space (what forms show beside an address)."""
    with db.read() as s:
        space_id = visible_space(s, actor, space, "server.read").id
        rows = s.execute(
            select(Server.address, Server.port, Server.name).where(Server.space_id == space_id)
        ).all()
    return {validate.HostSpec(a, p, None).key: n for a, p, n in rows}
