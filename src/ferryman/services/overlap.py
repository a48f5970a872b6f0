"""Refuse a project configuration whose environments would tread on another's paths on a
shared host (``domain/overlap.py``): called by ``projects.apply_project`` before anything
is written. The error names the other project and environment, the host and the paths — or,
when the applier cannot see the other project's space, says only "a project of another
space" and the applier's own path and host: nothing of the other space's layout. A local
target (``hosts: [local]``) also claims its whole shared dir and its webroot's directory,
which its sandbox binds writable. One host written two ways (``localhost`` and
``127.0.0.1``, ``127.1``) is one host (``same_host``), and the deploy host's own loopback
so written is ``local`` as well; no name is ever looked up."""

from __future__ import annotations

import posixpath
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ferryman.config.project import ProjectConfig, parse_project
from ferryman.db.models import Project, Server, Space
from ferryman.domain import validate
from ferryman.domain.local_paths import LOCAL
from ferryman.domain.overlap import (
    Claim,
    claims,
    collisions,
    is_deploy_host,
    same_host,
    shared_dir,
)
from ferryman.errors import ConfigError, ValidationError
from ferryman.said import said
from ferryman.services import inventory
from ferryman.services.audit import Actor
from ferryman.services.authz import visible_space_ids

Where = tuple[str, str, set[str], list[Claim]]  # owner, env, host keys, claims
FOREIGN = "a project of another space"  # named so, and nothing more of it is shown


def _where(
    owner: str, env: str, hosts: set[str], claims: list[Claim], local: list[Claim]
) -> list[Where]:
    """An environment's claims per kind of host: its remote hosts claim ``claims``; the
    deploy host itself (``local``) claims those and ``local`` as well. A remote host that is
    the deploy host's own loopback (``127.0.0.1``, ``localhost``) is ``local`` too: its
    paths are the ones a ``hosts: [local]`` environment writes."""
    out: list[Where] = []
    remote = hosts - {LOCAL}
    if remote and claims:
        here = {LOCAL} if any(is_deploy_host(key) for key in remote) else set()
        out.append((owner, env, remote | here, claims))
    if LOCAL in hosts and claims:
        out.append((owner, env, {LOCAL}, claims + local))
    return out


def refuse_overlaps(s: Session, actor: Actor, space: Space, config: ProjectConfig) -> None:
    """``ConfigError`` listing every path of ``config`` that overlaps a path of another
    environment (of this project or any other) on one host; nothing when none does."""
    servers: dict[int, list[Server]] = {}
    mine: list[Where] = []
    for name, env in config.environments.items():
        dumped = env.model_dump()
        mine += _where(
            config.project,
            name,
            _hosts(s, servers, space.id, dumped),
            _claims(config.project, name, dumped),
            _local_claims(config.project, name, dumped),
        )
    theirs: list[Where] = []
    visible = visible_space_ids(s, actor)
    rows = s.execute(
        select(Project.space_id, Project.name, Project.config)
        .where(Project.deleted_at.is_(None))  # a deleted project's paths are free again
        .order_by(Project.id)
    )
    for space_id, project_name, stored in rows:
        if space_id == space.id and project_name == config.project:
            continue  # its stored configuration is the one being replaced
        owner = project_name if visible is None or space_id in visible else FOREIGN
        # the stored file as it was validated when applied, read as it is (parsing every
        # project's file again on every apply costs ~2 ms each)
        envs = stored.get("environments") if isinstance(stored, dict) else None
        for name, env in (envs or {}).items():
            named = str(stored.get("project") or project_name)
            if isinstance(env, dict):
                theirs += _where(
                    owner,
                    name,
                    _hosts(s, servers, space_id, env),
                    _claims(named, name, env),
                    _local_claims(named, name, env),
                )
    problems: list[str] = []
    for index, (_owner, name, hosts, paths) in enumerate(mine):
        # the project's own other environments, then everyone else's
        for other_owner, other_name, other_hosts, other_paths in mine[index + 1 :] + theirs:
            shared = sorted(hosts & other_hosts)
            if not shared:
                continue
            # ``local`` is named when it is the only way the two meet (a local target and
            # an ssh host on the loopback); beside the loopback's own keys it says nothing
            shared = [key for key in shared if key != LOCAL] or shared
            for a, b in collisions(paths, other_paths):
                if other_owner == FOREIGN:  # its paths and environment are not the user's to see
                    problems.append(
                        said(
                            "environments/%(env)s: %(claim)s %(path)s overlaps a path of "
                            "a project of another space on %(hosts)s",
                            env=name,
                            claim=a.what,
                            path=a.path,
                            hosts=shared,
                        )
                    )
                    continue
                problems.append(
                    said(
                        "environments/%(env)s: %(claim)s %(path)s overlaps the %(other_claim)s "
                        "%(other_path)s of project %(project)s (environment %(other_env)s) "
                        "on %(hosts)s",
                        env=name,
                        claim=a.what,
                        path=a.path,
                        other_claim=b.what,
                        other_path=b.path,
                        project=other_owner,
                        other_env=other_name,
                        hosts=shared,
                    )
                )
    if problems:
        raise ConfigError(
            said(
                "project %(project)s: paths overlap another environment's on the same host",
                project=config.project,
            ),
            problems,
        )


def _claims(project: str, env_name: str, env: Any) -> list[Claim]:
    """The paths an environment (its stored or dumped mapping) claims; none from a mapping
    that is not one."""
    if not isinstance(env, dict):
        return []
    webroot, releases = env.get("webroot"), env.get("releases")
    if not isinstance(webroot, str) or not isinstance(releases, str):
        return []
    given = env.get("shared_dir")
    shared = [p for p in env.get("shared") or [] if isinstance(p, str)]
    root = shared_dir(given if isinstance(given, str) else None, releases, project, env_name)
    return claims(webroot, releases, root, shared)


def _local_claims(project: str, env_name: str, env: Any) -> list[Claim]:
    """What a local target claims beyond ``_claims``: what its sandbox binds writable
    (``remote/local.py``) — its whole shared dir, ``shared:`` entries or not, and the
    directory its webroot link is in (the switch renames the link there), so another
    project's paths under that directory are refused, not left writable to this one's hooks."""
    if not isinstance(env, dict):
        return []
    releases, given, webroot = env.get("releases"), env.get("shared_dir"), env.get("webroot")
    if not isinstance(releases, str):
        return []
    out = [
        Claim(
            said("shared dir"),
            shared_dir(given if isinstance(given, str) else None, releases, project, env_name),
        )
    ]
    if isinstance(webroot, str) and webroot.rstrip("/"):
        directory = posixpath.dirname(webroot.rstrip("/")) or "/"
        out.append(Claim(said("webroot's directory"), directory))
    return out


def _hosts(s: Session, cache: dict[int, list[Server]], space_id: int, env: Any) -> set[str]:
    """The ``address:port`` of every host the environment targets: literal hosts, servers
    by name and by labels, each in the forms ``same_host`` knows it by."""
    if space_id not in cache:
        cache[space_id] = inventory.servers_of_space(s, space_id)
    keys: set[str] = set()
    for raw in env.get("hosts") or []:
        try:
            keys |= same_host(validate.host(str(raw)))
        except ValidationError:
            continue  # not a host this schema reads: it targets nothing
    names = set(env.get("servers") or [])
    wanted = set(env.get("labels") or [])
    for server in cache[space_id]:
        if server.name in names or (wanted and wanted <= set(server.labels)):
            keys |= same_host(validate.HostSpec(server.address, server.port))
    return keys


def refuse_for_server(s: Session, actor: Actor, server: Server) -> None:
    """``ConfigError`` when ``server`` (just added, moved or relabelled; flushed) makes an
    environment that targets it overlap another's paths on a host: ``apply`` checks the
    hosts a file names, this what a change of the inventory aims at them. Only the projects
    of the server's space whose environments target it (by address, name or labels) are
    checked again."""
    space = s.get(Space, server.space_id)
    if space is None:
        return
    keys = same_host(validate.HostSpec(server.address, server.port))
    cache: dict[int, list[Server]] = {}
    live = Project.deleted_at.is_(None)
    rows = s.execute(
        select(Project.config).where(Project.space_id == space.id, live).order_by(Project.id)
    )
    for (stored,) in rows:
        envs = stored.get("environments") if isinstance(stored, dict) else None
        aimed = [
            env
            for env in (envs or {}).values()
            if isinstance(env, dict) and keys & _hosts(s, cache, space.id, env)
        ]
        if not aimed:
            continue
        try:
            config = parse_project(stored)
        except ConfigError:
            continue  # a stored file the schema no longer reads: nothing to compare
        refuse_overlaps(s, actor, space, config)
