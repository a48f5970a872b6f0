"""Projects: created or updated from one validated configuration (``ferryman apply``), copied,
and their per-project role overrides. A project lives in one space; its environments must be
environments of that space, and every host it targets is a server of that space (literal
``hosts:`` are matched to servers, or registered by a master: ``services.project_rules``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ferryman.config.project import ProjectConfig, dump_project, parse_project
from ferryman.db.models import (
    Environment,
    Project,
    ProjectMember,
    Server,
    Space,
    User,
    utcnow,
)
from ferryman.db.session import Database
from ferryman.domain import overlap as overlap_rules
from ferryman.domain import validate
from ferryman.domain.permissions import Role
from ferryman.domain.validate import row_id
from ferryman.errors import ConfigError, Conflict, NotFound
from ferryman.outbound import for_database
from ferryman.said import said
from ferryman.services import analysis, group_roles, inventory, overlap, project_rules
from ferryman.services.audit import Actor, record
from ferryman.services.authz import require, visible_space_ids
from ferryman.services.spaces import find_user, load_space, visible_space


def project_dict(project: Project, space: Space | None = None) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "display_name": project.display_name,
        "space_id": project.space_id,
        "space": space.name if space else None,
        "repo": project.config.get("repo"),
        "environments": sorted(project.config.get("environments", {})),
        "updated_at": project.updated_at.isoformat(),
    }


def find_project(s: Session, actor: Actor, ref: int | str, action: str) -> Project:
    """A project by id, ``space:name`` or a name unique among the spaces the actor sees;
    then ``require(action)`` on it. Invisible projects are ``NotFound``."""
    text = str(ref)
    project: Project | None
    if (ident := row_id(ref)) is not None:
        project = s.get(Project, ident) if ident else None
    elif ":" in text:
        space_name, _, name = text.partition(":")
        project = s.scalar(
            select(Project)
            .join(Space, Space.id == Project.space_id)
            .where(Space.name == space_name, Project.name == name)
        )
    else:
        stmt = select(Project).where(Project.name == text)
        ids = visible_space_ids(s, actor)
        if ids is not None:
            stmt = stmt.where(Project.space_id.in_(ids))
        found = list(s.scalars(stmt))
        if len(found) > 1:
            raise Conflict(
                said(
                    "%(n)s projects are named %(name)s; use SPACE:%(bare)s or the project id",
                    n=len(found),
                    name=repr(text),
                    bare=text,
                ),
                ids=[p.id for p in found],
            )
        project = found[0] if found else None
    missing = NotFound(said("no project %(name)s", name=repr(text)))
    if project is None or project.deleted_at is not None:  # deleted: kept for its records
        raise missing
    try:
        require(s, actor, action, project=project, what=f"project {text!r}")
    except NotFound:  # another space's: refused word for word (template too) as a missing one
        raise missing from None
    return project


def _check_against_space(s: Session, space: Space, config: ProjectConfig) -> None:
    """Environments must exist in the space; named servers and labels must match servers."""
    errors: list[str] = []
    names = {e.name for e in _space_envs(s, space.id)}
    servers = inventory.servers_of_space(s, space.id)
    by_name = {x.name for x in servers}
    for env_name, env in config.environments.items():
        if env_name not in names:
            errors.append(
                said(
                    "environments/%(env)s: space %(space)s has no such environment "
                    "(has: %(known)s); a master creates it first",
                    env=env_name,
                    space=repr(space.name),
                    known=", ".join(sorted(names)) if names else said("none"),
                )
            )
        for i, server in enumerate(env.servers):
            if server not in by_name:
                errors.append(
                    said(
                        "environments/%(env)s/servers/%(i)s: no server %(server)s",
                        env=env_name,
                        i=i,
                        server=repr(server),
                    )
                )
        if env.labels and not _labelled(servers, env.labels):
            errors.append(
                said(
                    "environments/%(env)s/labels: no server has all of %(labels)s",
                    env=env_name,
                    labels=list(env.labels),
                )
            )
    if errors:
        raise ConfigError(
            said(
                "project %(project)s does not fit space %(space)s",
                project=config.project,
                space=space.name,
            ),
            errors,
        )


def _space_envs(s: Session, space_id: int) -> list[Environment]:
    return list(s.scalars(select(Environment).where(Environment.space_id == space_id)))


def _labelled(servers: list[Server], labels: list[str]) -> list[Server]:
    wanted = set(labels)
    return [x for x in servers if wanted <= set(x.labels)]


def effective_config(s: Session, project: Project) -> ProjectConfig:
    """The project's configuration with servers and labels expanded into ``hosts``."""
    data = dict(project.config)
    servers = inventory.servers_for(s, project.space_id, data.get("environments", {}))
    by_name = {x.name: x for x in servers}
    envs = {}
    for env_name, env in data.get("environments", {}).items():
        env = dict(env)
        hosts: list[str] = []
        for raw in env.get("hosts", []):
            spec = validate.host(raw)
            match = next(
                (x for x in servers if x.address == spec.address and x.port == spec.port), None
            )
            if match is None:
                raise ConfigError(
                    said(
                        "%(project)s %(env)s: %(host)s is not a server of its space; a master "
                        "adds it (`ferryman server add`) or applies the project again",
                        project=project.name,
                        env=env_name,
                        host=spec.key,
                    ),
                    [
                        said(
                            "environments/%(env)s/hosts: %(host)s is not a server of the space",
                            env=env_name,
                            host=spec.key,
                        )
                    ],
                )
            user = spec.user or match.user or None
            hosts.append(str(validate.HostSpec(spec.address, spec.port, user)))
        chosen = [by_name[n] for n in env.get("servers", []) if n in by_name]
        if env.get("labels"):
            chosen += _labelled(servers, env["labels"])
        seen = {validate.host(h).key for h in hosts}
        for member in chosen:
            text = inventory.server_host(member)
            key = validate.host(text).key
            if key not in seen:
                seen.add(key)
                hosts.append(text)
        env["hosts"] = hosts
        env["servers"] = []
        env["labels"] = []
        envs[env_name] = env
    data["environments"] = envs
    return parse_project(data)


class _DryRun(Exception):
    """Ends a dry run's transaction: everything it did is rolled back."""

    def __init__(self, plan: dict[str, Any]) -> None:
        super().__init__("dry run")
        self.plan = plan


def plan_apply(db: Database, actor: Actor, config: ProjectConfig) -> dict[str, Any]:
    """What ``apply_project`` would do, with every check it makes (permissions, the space's
    environments and servers, its policy), and nothing written: ``created`` and the project
    as it would read, and ``changes``, each ``{path, before, after}`` (empty: unchanged)."""
    try:
        apply_project(db, actor, config, dry_run=True)
    except _DryRun as done:
        return done.plan
    raise AssertionError("a dry run always ends in _DryRun")  # pragma: no cover


def apply_project(
    db: Database, actor: Actor, config: ProjectConfig, dry_run: bool = False
) -> tuple[Project, bool]:
    """Create the project or replace its configuration; returns (project, created). A
    ``dry_run`` raises ``_DryRun`` with the plan, rolling the transaction back
    (``plan_apply``)."""
    with db.transaction() as s:
        return apply_in(s, db, actor, config, dry_run=dry_run)


def apply_in(
    s: Session, db: Database, actor: Actor, config: ProjectConfig, dry_run: bool = False
) -> tuple[Project, bool]:
    """``apply_project`` inside the caller's transaction ``s`` (``db`` is read for the
    outbound policy): a caller that writes more than the project — a release request's
    ticket — writes both or neither."""
    data = dump_project(config)
    space = visible_space(s, actor, config.space, "space.read")
    project = s.scalar(
        select(Project).where(Project.space_id == space.id, Project.name == config.project)
    )
    # A new project needs the space role; an existing one honours its role overrides.
    if project is None:
        require(s, actor, "project.create", space_id=space.id)
    else:
        require(s, actor, "project.manage", project=project)
    _check_against_space(s, space, config)
    overlap.refuse_overlaps(s, actor, space, config)  # no two envs on one host's paths
    project_rules.check_policy(s, actor, space, config, project.config if project else None)
    analysis.check_destinations(config, for_database(db))  # Prometheus: outbound policy
    project_rules.register_hosts(s, actor, space, config)
    created = project is None
    before = None
    if project is None:
        project = Project(
            space_id=space.id,
            name=config.project,
            config=data,
            display_name=config.display_name or "",
        )
        s.add(project)
        s.flush()
    else:
        before = project.config
        project.config = data
        project.display_name = config.display_name or ""
        project.updated_at = utcnow()
    s.flush()
    if dry_run:
        raise _DryRun(
            {
                "created": created,
                **project_dict(project, space),
                "changes": changes(before, data),
            }
        )
    record(
        s,
        actor,
        "project.create" if created else "project.update",
        f"space:{space.name}/project:{config.project}",
        space_id=space.id,
        project_id=project.id,
        environments=sorted(config.environments),
        changed=_changed_keys(before, data),
    )
    return project, created


def changes(before: dict[str, Any] | None, after: dict[str, Any]) -> list[dict[str, Any]]:
    """Every leaf that differs between two stored configurations, as ``{path, before,
    after}`` (``path`` like ``environments/production/keep_releases``; a missing side is
    null). Lists are compared whole."""
    old, new = _leaves(before or {}), _leaves(after)
    return [
        {"path": path, "before": old.get(path), "after": new.get(path)}
        for path in sorted(set(old) | set(new))
        if old.get(path) != new.get(path)
    ]


def _leaves(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data:
        out: dict[str, Any] = {}
        for key, value in data.items():
            out |= _leaves(value, f"{prefix}/{key}" if prefix else str(key))
        return out
    return {prefix: data}


def _changed_keys(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    if before is None:
        return []
    out = [
        k
        for k in sorted(set(before) | set(after))
        if k != "environments" and before.get(k) != after.get(k)
    ]
    envs_before, envs_after = before.get("environments", {}), after.get("environments", {})
    for env in sorted(set(envs_before) | set(envs_after)):
        a, b = envs_before.get(env, {}), envs_after.get(env, {})
        out += [f"environments/{env}/{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return out


def get_project(db: Database, actor: Actor, ref: int | str) -> tuple[Project, Space]:
    with db.read() as s:
        project = find_project(s, actor, ref, "project.read")
        return project, load_space(s, project.space_id)


def project_config(
    db: Database, actor: Actor, ref: int | str, action: str
) -> tuple[Project, ProjectConfig]:
    """The project and its effective configuration, after ``require(action)``."""
    with db.read() as s:
        project = find_project(s, actor, ref, action)
        return project, effective_config(s, project)


def list_projects(
    db: Database, actor: Actor, space: int | str | None = None
) -> list[dict[str, Any]]:
    with db.read() as s:
        stmt = (
            select(Project, Space)
            .join(Space, Space.id == Project.space_id)
            .where(Project.deleted_at.is_(None))
        )
        if space is not None:
            stmt = stmt.where(Project.space_id == visible_space(s, actor, space, "project.read").id)
        else:
            ids = visible_space_ids(s, actor)
            if ids is not None:
                stmt = stmt.where(Project.space_id.in_(ids))
        rows = s.execute(stmt.order_by(Space.name, Project.name)).all()
        return [project_dict(p, sp) for p, sp in rows]


def copy_project(
    db: Database, actor: Actor, ref: int | str, name: str, space: int | str | None = None
) -> Project:
    """Copy a project's configuration under a new name, in its space or another one the
    actor masters (same environments must exist there). A path component naming the project
    in a webroot, releases or shared dir names the copy (``/srv/www/site`` becomes
    ``/srv/www/site-copy``), and a copy whose paths still overlap another environment's on
    a host is refused, as ``apply`` refuses it."""
    validate.name(name, "project name")
    with db.transaction() as s:
        source = find_project(s, actor, ref, "project.read")
        target = (
            visible_space(s, actor, space, "project.manage")
            if space is not None
            else load_space(s, source.space_id)
        )
        require(s, actor, "project.manage", space_id=target.id, what=f"space {target.name!r}")
        data = overlap_rules.renamed_paths(
            {**source.config, "project": name, "space": target.name}, source.name, name
        )
        config = parse_project(data)
        _check_against_space(s, target, config)
        overlap.refuse_overlaps(s, actor, target, config)  # as apply: never on another's paths
        project_rules.check_policy(s, actor, target, config, None)
        analysis.check_destinations(config, for_database(db))  # Prometheus: outbound policy
        project_rules.register_hosts(s, actor, target, config)
        if s.scalar(select(Project).where(Project.space_id == target.id, Project.name == name)):
            raise Conflict(
                said(
                    "space %(space)s already has a project %(name)s",
                    space=target.name,
                    name=repr(name),
                )
            )
        project = Project(
            space_id=target.id,
            name=name,
            config=dump_project(config),
            display_name=config.display_name or "",
        )
        s.add(project)
        s.flush()
        record(
            s,
            actor,
            "project.copy",
            f"space:{target.name}/project:{name}",
            space_id=target.id,
            project_id=project.id,
            source_project_id=source.id,
        )
        return project


def list_project_members(db: Database, actor: Actor, ref: int | str) -> list[dict[str, Any]]:
    with db.read() as s:
        project = find_project(s, actor, ref, "member.read")
        rows = s.execute(
            select(ProjectMember, User)
            .join(User, User.id == ProjectMember.user_id)
            .where(ProjectMember.project_id == project.id)
            .order_by(User.username)
        ).all()
        return [{"user_id": u.id, "username": u.username, "role": m.role} for m, u in rows]


def set_project_member(
    db: Database, actor: Actor, ref: int | str, user_ref: int | str, role: str
) -> dict[str, Any]:
    """Override a space member's role for this project (higher or lower)."""
    parsed = Role.parse(role)
    with db.transaction() as s:
        project = find_project(s, actor, ref, "member.manage")
        user = _member_user(s, project, user_ref)
        row = s.get(ProjectMember, (project.id, user.id))
        before = row.role if row else None
        if row is None:
            s.add(ProjectMember(project_id=project.id, user_id=user.id, role=parsed.name))
        else:
            row.role = parsed.name
        record(
            s,
            actor,
            "project_member.set",
            f"project:{project.name}/user:{user.username}",
            space_id=project.space_id,
            project_id=project.id,
            before=before,
            after=parsed.name,
        )
        return {"user_id": user.id, "username": user.username, "role": parsed.name}


def remove_project_member(db: Database, actor: Actor, ref: int | str, user_ref: int | str) -> None:
    with db.transaction() as s:
        project = find_project(s, actor, ref, "member.manage")
        user = _member_user(s, project, user_ref)
        row = s.get(ProjectMember, (project.id, user.id))
        if row is None:
            raise NotFound(
                said(
                    "%(user)s has no override on %(project)s",
                    user=user.username,
                    project=project.name,
                )
            )
        s.delete(row)
        record(
            s,
            actor,
            "project_member.remove",
            f"project:{project.name}/user:{user.username}",
            space_id=project.space_id,
            project_id=project.id,
            before=row.role,
        )


def _member_user(s: Session, project: Project, user_ref: int | str) -> User:
    """A user who holds a role in the project's space — their own or a group's: only they
    can have an override (which replaces that role for the project, as ``authz`` reads it)."""
    user = find_user(s, user_ref)
    if group_roles.user_role(s, user.id, project.space_id) is None:
        raise NotFound(said("%(user)s is not a member of the project's space", user=user.username))
    return user


def record_detect(db: Database, actor: Actor, project: Project, env: str, ok: bool) -> None:
    """Config detection touches hosts (it creates the releases dir): it is audited too."""
    with db.transaction() as s:
        record(
            s,
            actor,
            "project.detect",
            f"project:{project.name}/{env}",
            space_id=project.space_id,
            project_id=project.id,
            ok=ok,
        )


def space_of_project(db: Database, project_id: int) -> int:
    with db.read() as s:
        project = s.get(Project, project_id)
        if project is None:
            raise NotFound(said("no project #%(id)s", id=project_id))
        return project.space_id
