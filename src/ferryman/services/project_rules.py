"""What a project configuration may ask for, checked when it is applied (or copied).

- Hosts come from the space's inventory: a literal ``hosts:`` entry is a server of the space.
  Applied by someone who manages the space's servers (a master or owner), unknown hosts are
  registered as servers in the same transaction (audited); applied by anyone else they are
  refused, naming the host. Every server a project environment targets joins that environment
  (approval follows the servers).
- Free paths on the deploy host (``ssh_key``, ``known_hosts``, ``repo_ssh_key``,
  ``repo_known_hosts``) are a superuser's to set or change.
- ``file://`` repositories only in spaces where a superuser allows local repositories.
- Health checks from the deploy host reach only the host being checked (``{HOST}``).
- Every wait it asks a worker for (hooks, delays, health-check retries) within the space's
  ``max_task_timeout``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ferryman.config.project import ProjectConfig
from ferryman.db.models import Server, Space
from ferryman.domain import inventory as rules
from ferryman.domain import validate
from ferryman.domain.permissions import role_allows
from ferryman.errors import ConfigError
from ferryman.said import said
from ferryman.services.audit import Actor, record
from ferryman.services.authz import space_role
from ferryman.vcs.base import is_local

FREE_PATHS = ("ssh_key", "known_hosts", "repo_ssh_key", "repo_known_hosts")


def _may_manage_servers(s: Session, actor: Actor, space: Space) -> bool:
    if actor.is_superuser:
        return True
    return role_allows(space_role(s, actor, space.id), "server.manage")


def check_policy(
    s: Session,
    actor: Actor,
    space: Space,
    config: ProjectConfig,
    before: dict[str, Any] | None,
) -> None:
    """Refuse what the actor may not ask for in this space (``ConfigError`` naming paths)."""
    errors: list[str] = []
    old_envs = (before or {}).get("environments", {})
    changed_repo = before is None or before.get("repo") != config.repo
    if is_local(config.repo) and not space.allow_local_repos and changed_repo:
        errors.append(
            said(
                "repo: local repositories (%(repo)s) are refused in space %(space)s; "
                "a superuser allows them (`ferryman space limits %(name)s "
                "--allow-local-repos`)",
                repo=config.repo,
                space=repr(space.name),
                name=space.name,
            )
        )
    for env_name, env in config.environments.items():
        old = old_envs.get(env_name, {})
        granted = [k for k in FREE_PATHS if getattr(env, k) is not None]
        if granted and not actor.is_superuser:
            aimed = [
                k
                for k in ("hosts", "servers", "labels", "user")
                if _aim(env, k) != _aim_old(old, k)
            ]
            if aimed:
                errors.append(
                    said(
                        "environments/%(env)s: it uses %(granted)s a superuser set; "
                        "changing where it goes (%(aimed)s) is a superuser's too",
                        env=env_name,
                        granted=granted,
                        aimed=aimed,
                    )
                )
        for key in FREE_PATHS:
            value = getattr(env, key)
            if value is not None and value != old.get(key) and not actor.is_superuser:
                errors.append(
                    said(
                        "environments/%(env)s/%(key)s: a path on the deploy host is a "
                        "superuser's setting; deploys use their space's own key "
                        "(`ferryman ssh-key --space SPACE`) and pinned host keys "
                        "(`ferryman server trust NAME`)",
                        env=env_name,
                        key=key,
                    )
                )
        for i, check in enumerate(env.health_check):
            problem = validate.health_check_problem(check.http, check.tcp)
            if problem:
                errors.append(f"environments/{env_name}/health_check/{i}: {problem}")
        limit = space.max_task_timeout
        for path, seconds in _waits(env):
            if seconds > limit:
                errors.append(
                    said(
                        "environments/%(env)s/%(path)s: %(seconds)ss is more than "
                        "space %(space)s allows (%(limit)ss)",
                        env=env_name,
                        path=path,
                        seconds=format(seconds, "g"),
                        space=repr(space.name),
                        limit=format(limit, "g"),
                    )
                )
    if errors:
        raise ConfigError(
            said("project %(project)s asks for what it may not", project=config.project), errors
        )


def _waits(env: Any) -> list[tuple[str, float]]:
    """Every wait a project can ask a worker for, in seconds, bounded by the space's
    ``max_task_timeout``: hooks, delays between hosts and batches, a health check's worst."""
    out = [("task_timeout", float(env.task_timeout))]
    out.append(("post_release_delay", float(env.post_release_delay)))
    if env.strategy is not None:
        out.append(("strategy/between_batches", float(env.strategy.between_batches)))
    for i, check in enumerate(env.health_check):
        worst = check.retries * check.timeout + (check.retries - 1) * check.interval
        out.append((f"health_check/{i} (retries x (timeout + interval))", float(worst)))
    if env.verify_served is not None:
        out.append(
            ("verify_served (attempts x (timeout + interval))", env.verify_served.worst_seconds)
        )
    if env.migrations is not None:
        out.append(("migrations/timeout", float(env.migrations.timeout)))
    return out


def _aim(env: Any, key: str) -> Any:
    value = getattr(env, key)
    return sorted(str(v) for v in value) if isinstance(value, list) else value


def _aim_old(old: dict[str, Any], key: str) -> Any:
    if key == "user":
        return old.get("user")
    return sorted(str(v) for v in old.get(key, []) or [])


def register_hosts(s: Session, actor: Actor, space: Space, config: ProjectConfig) -> None:
    """Make every literal host a server of the space (or refuse), then let every targeted
    server join the environments that target it."""
    servers = list(s.scalars(select(Server).where(Server.space_id == space.id)))
    refs = [_ref(x) for x in servers]
    unknown: list[tuple[str, validate.HostSpec]] = []
    for env_name, env in config.environments.items():
        for spec in env.hosts:
            if rules.match_literal(spec, refs) is None and spec.key not in [
                u[1].key for u in unknown
            ]:
                unknown.append((env_name, spec))
    if unknown and not _may_manage_servers(s, actor, space):
        raise ConfigError(
            said(
                "project %(project)s names hosts that are not servers of space %(space)s",
                project=config.project,
                space=repr(space.name),
            ),
            [
                said(
                    "environments/%(env)s/hosts: %(host)s is not a server of the space; "
                    "a master adds it (`ferryman server add`)",
                    env=env_name,
                    host=spec.key,
                )
                for env_name, spec in unknown
            ],
        )
    for _env_name, spec in unknown:
        name = rules.server_name_for(spec, [r.name for r in refs])
        server = Server(
            space_id=space.id,
            name=name,
            address=spec.address,
            port=spec.port,
            user="",
            labels=[],
            description=f"registered from project {config.project}",
            host_key="",
            environments=[],
        )
        s.add(server)
        s.flush()
        servers.append(server)
        refs.append(_ref(server))
        record(
            s,
            actor,
            "server.create",
            f"space:{space.name}/server:{name}",
            space_id=space.id,
            address=spec.key,
            source=f"project:{config.project}",
        )
    by_name = {x.name: x for x in servers}
    for env_name, env in config.environments.items():
        raw = {"hosts": [str(h) for h in env.hosts], "servers": env.servers, "labels": env.labels}
        for ref in rules.targeted(raw, refs):
            server = by_name[ref.name]
            if env_name not in (server.environments or []):
                server.environments = sorted({*(server.environments or []), env_name})
                record(
                    s,
                    actor,
                    "server.join",
                    f"space:{space.name}/server:{server.name}",
                    space_id=space.id,
                    environment=env_name,
                    source=f"project:{config.project}",
                )


def _ref(server: Server) -> rules.ServerRef:
    return rules.ServerRef(
        server.name, server.address, server.port, server.user or "", tuple(server.labels or [])
    )
