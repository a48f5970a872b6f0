"""Config files of a project environment: kept by Ferryman (encrypted at rest), versioned,
overridden per server label or host, previewed per host, and snapshotted into each deploy.

Content is a template (``${DB_PASSWORD}``, ``${HOST}``); secret values are only ever put into
it by the worker, per host, while shipping a release. Everything shown — file views, history
diffs, previews — has secret values masked.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ferryman.config.project import ProjectConfig, parse_project
from ferryman.db.models import ConfigFile as Stored
from ferryman.db.models import ConfigVersion, Project, Secret, utcnow
from ferryman.db.session import Database
from ferryman.domain import config_files as cf
from ferryman.domain import validate
from ferryman.domain.manifest import excluded
from ferryman.domain.masking import Masker
from ferryman.errors import ConfigError, NotFound, ValidationError
from ferryman.said import said
from ferryman.secretbox import SecretBox, is_sealed
from ferryman.services.audit import Actor, record
from ferryman.services.projects import find_project

# Known at preview time; the other deploy variables (RELEASE, COMMIT, …) only at deploy time.
PREVIEW_NAMES = ("PROJECT", "ENV", "HOST", "WEBROOT", "RELEASES")


# --- reading rows ----------------------------------------------------------------------------


def decode(box: SecretBox, row: Stored | ConfigVersion) -> cf.ConfigFile:
    data = json.loads(box.open(row.data))
    return cf.ConfigFile.from_dict({"path": row.path, "mode": row.mode, **data})


def _encode(box: SecretBox, config: cf.ConfigFile) -> str:
    data = config.to_dict()
    return box.seal(json.dumps({"content": data["content"], "overrides": data["overrides"]}))


def _row(s: Session, project: Project, env: str, path: str) -> Stored | None:
    return s.scalar(
        select(Stored).where(
            Stored.project_id == project.id, Stored.env == env, Stored.path == path
        )
    )


def existing(s: Session, project: Project, env: str, path: str) -> Stored:
    row = _row(s, project, env, path)
    if row is None:
        raise NotFound(
            said(
                "%(project)s %(env)s has no config file %(path)s",
                project=project.name,
                env=env,
                path=repr(path),
            )
        )
    return row


def env_config(project: Project, env: str) -> ProjectConfig:
    config = parse_project(project.config)
    config.environment(env)  # NotFound names the environments it has
    return config


def secret_masker(s: Session, box: SecretBox, project: Project, env: str) -> Masker:
    values = [box.open(v) for v in sealed_secrets(s, project, env).values()]
    return Masker(values)


def sealed_secrets(s: Session, project: Project, env: str) -> dict[str, str]:
    from ferryman.services.deploys import space_environment

    environment = space_environment(s, project, env)
    sealed = {k: v for k, v in environment.variables.items() if is_sealed(v)}
    rows = s.scalars(select(Secret).where(Secret.project_id == project.id, Secret.env == env))
    return sealed | {r.name: r.value for r in rows}


def summary(row: Stored, declared: bool = False) -> dict[str, Any]:
    return {
        "path": row.path,
        "mode": f"{row.mode:04o}",
        "version": row.version,
        "updated_by": row.updated_by,
        "updated_at": row.updated_at.isoformat(),
        "declared": declared,
    }


# --- writing ---------------------------------------------------------------------------------


def _save(
    s: Session,
    db: Database,
    actor: Actor,
    project: Project,
    env: str,
    row: Stored,
    config: cf.ConfigFile,
    change: str,
    action: str,
) -> dict[str, Any]:
    row.mode, row.data = config.mode, _encode(db.box, config)
    row.updated_by, row.updated_at = actor.username, utcnow()
    s.flush()
    s.add(
        ConfigVersion(
            project_id=project.id,
            env=env,
            path=row.path,
            version=row.version,
            mode=row.mode,
            data=row.data,
            change=change[:300],
            changed_by=actor.username,
        )
    )
    record(
        s,
        actor,
        action,
        f"project:{project.name}/{env}/config:{row.path}",
        space_id=project.space_id,
        project_id=project.id,
        version=row.version,
        change=change[:300],
    )
    return summary(row, row.path in env_config(project, env).environment(env).config_files)


def set_file(
    db: Database,
    actor: Actor,
    project_ref: int | str,
    env: str,
    path: str,
    content: str | None = None,
    mode: str | int | None = None,
) -> dict[str, Any]:
    """Create a config file, or change its content and/or mode (overrides are kept)."""
    path = cf.path(path)
    if content is not None:
        cf.content(content)
    with db.transaction() as s:
        project = find_project(s, actor, project_ref, "config.manage")
        env_config(project, env)
        row = _row(s, project, env, path)
        if row is None:
            if content is None:
                raise ValidationError(said("%(path)s: a new config file needs content", path=path))
            count = len(
                s.scalars(
                    select(Stored.id).where(Stored.project_id == project.id, Stored.env == env)
                ).all()
            )
            if count >= cf.MAX_FILES:
                raise ValidationError(
                    said("at most %(most)s config files per environment", most=cf.MAX_FILES)
                )
            config = cf.ConfigFile(path=path, mode=cf.mode(mode), content=content)
            row = Stored(project_id=project.id, env=env, path=path, version=1, data="")
            s.add(row)
            return _save(s, db, actor, project, env, row, config, "created", "config.create")
        old = decode(db.box, row)
        config = cf.ConfigFile(
            path=path,
            mode=old.mode if mode is None else cf.mode(mode),
            content=old.content if content is None else content,
            overrides=old.overrides,
        )
        changes = [
            what
            for what, changed in (
                ("content", config.content != old.content),
                (f"mode {config.mode:04o}", config.mode != old.mode),
            )
            if changed
        ]
        row.version += 1
        return _save(
            s,
            db,
            actor,
            project,
            env,
            row,
            config,
            ", ".join(changes) or "saved unchanged",
            "config.update",
        )


def set_override(
    db: Database,
    actor: Actor,
    project_ref: int | str,
    env: str,
    path: str,
    scope: str,
    content: str | None = None,
    keys: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Give the hosts of ``scope`` (``label:NAME`` or ``host:NAME``) their own content and/or
    key values for this file; replaces that scope's earlier override."""
    path, scope = cf.path(path), cf.scope(scope)
    if content is None and not keys:
        raise ValidationError(said("an override needs content or keys to set"))
    if content is not None:
        cf.content(content)
    values = cf.keys(keys or {})
    with db.transaction() as s:
        project = find_project(s, actor, project_ref, "config.manage")
        env_config(project, env)
        row = existing(s, project, env, path)
        old = decode(db.box, row)
        override = cf.Override(scope=scope, content=content, set=values)
        kept = [o for o in old.overrides if o.scope != scope]
        config = cf.ConfigFile(path, old.mode, old.content, (*kept, override))
        row.version += 1
        what = "content" if content is not None else ""
        what += (" and " if what else "") + ("keys " + ", ".join(values) if values else "")
        return _save(
            s, db, actor, project, env, row, config, f"override {scope}: {what}", "config.override"
        )


def delete_override(
    db: Database, actor: Actor, project_ref: int | str, env: str, path: str, scope: str
) -> dict[str, Any]:
    path, scope = cf.path(path), cf.scope(scope)
    with db.transaction() as s:
        project = find_project(s, actor, project_ref, "config.manage")
        row = existing(s, project, env, path)
        old = decode(db.box, row)
        kept = tuple(o for o in old.overrides if o.scope != scope)
        if len(kept) == len(old.overrides):
            raise NotFound(said("%(path)s has no override for %(scope)s", path=path, scope=scope))
        row.version += 1
        config = cf.ConfigFile(path, old.mode, old.content, kept)
        return _save(
            s,
            db,
            actor,
            project,
            env,
            row,
            config,
            f"removed override {scope}",
            "config.override_delete",
        )


def delete_file(db: Database, actor: Actor, project_ref: int | str, env: str, path: str) -> None:
    """Stop shipping a file (the next release has none); its history is kept."""
    path = cf.path(path)
    with db.transaction() as s:
        project = find_project(s, actor, project_ref, "config.manage")
        row = existing(s, project, env, path)
        s.add(
            ConfigVersion(
                project_id=project.id,
                env=env,
                path=path,
                version=row.version + 1,
                mode=row.mode,
                data="",
                deleted=True,
                change="deleted",
                changed_by=actor.username,
            )
        )
        s.delete(row)
        record(
            s,
            actor,
            "config.delete",
            f"project:{project.name}/{env}/config:{path}",
            space_id=project.space_id,
            project_id=project.id,
            version=row.version + 1,
        )


def host_identities(
    s: Session, project: Project, config: ProjectConfig, env: str
) -> dict[str, cf.HostIdentity]:
    """Each host of the environment with the server names and labels it has in the space."""
    from ferryman.services import inventory

    known: dict[str, tuple[list[str], list[str]]] = {}
    for server in inventory.servers_of_space(s, project.space_id):
        key = validate.host(inventory.server_host(server)).key
        names, labels = known.setdefault(key, ([], []))
        names.append(server.name)
        labels += [x for x in server.labels if x not in labels]
    out = {}
    for spec in config.environment(env).hosts:
        names, labels = known.get(spec.key, ([], []))
        out[spec.key] = cf.HostIdentity(spec.key, tuple(names), tuple(labels))
    return out


# --- deploys ---------------------------------------------------------------------------------


def config_views(s: Session, project: Project, env: str) -> list[dict[str, Any]]:
    """Path and current version of each config file (no content), for previews."""
    rows = s.scalars(
        select(Stored)
        .where(Stored.project_id == project.id, Stored.env == env)
        .order_by(Stored.path)
    )
    return [{"path": r.path, "version": r.version} for r in rows]


def bundle_for(
    s: Session, project: Project, config: ProjectConfig, env: str
) -> tuple[str, dict[str, int]]:
    """The snapshot a deploy ships — each file still sealed, and the hosts' names and labels —
    and the file versions; refuses when a file the YAML declares has not been set."""
    rows = s.scalars(
        select(Stored)
        .where(Stored.project_id == project.id, Stored.env == env)
        .order_by(Stored.path)
    ).all()
    have = {r.path for r in rows}
    missing = [p for p in config.environment(env).config_files if p not in have]
    if missing:
        raise ConfigError(
            said(
                "%(project)s %(env)s needs config files that are not set: %(missing)s "
                "(`ferryman config set %(project)s PATH --env %(env)s --file FILE`)",
                project=project.name,
                env=env,
                missing=missing,
            ),
            [
                said("environments/%(env)s/config_files: %(path)s is not set", env=env, path=p)
                for p in missing
            ],
        )
    shared = ["/" + p for p in config.environment(env).shared]
    inside = [r.path for r in rows if excluded(r.path, shared)]
    if inside:
        raise ConfigError(
            said(
                "config files inside a shared path would not belong to the release: "
                "%(files)s; move them or stop sharing that path",
                files=inside,
            ),
            [
                said("environments/%(env)s/shared: holds config file %(path)s", env=env, path=p)
                for p in inside
            ],
        )
    if not rows:
        return "", {}
    idents = host_identities(s, project, config, env)
    data = {
        "files": [{"path": r.path, "mode": r.mode, "data": r.data} for r in rows],
        "hosts": {k: {"names": list(i.names), "labels": list(i.labels)} for k, i in idents.items()},
    }
    return json.dumps(data), {r.path: r.version for r in rows}


def open_bundle(
    box: SecretBox, bundle: str
) -> tuple[list[cf.ConfigFile], dict[str, cf.HostIdentity]]:
    """The files (opened: only the worker does this) and host identities of a snapshot."""
    if not bundle:
        return [], {}
    data = json.loads(bundle)
    files = [
        cf.ConfigFile.from_dict(
            {"path": f["path"], "mode": f["mode"], **json.loads(box.open(f["data"]))}
        )
        for f in data["files"]
    ]
    hosts = {
        k: cf.HostIdentity(k, tuple(v["names"]), tuple(v["labels"]))
        for k, v in data["hosts"].items()
    }
    return files, hosts


def rotate(s: Session, box: SecretBox) -> int:
    """Re-encrypt every config file, version and deploy snapshot with the newest key."""
    from ferryman.db.models import Deploy

    count = 0
    for row in s.scalars(select(Stored)):
        row.data = box.rotate(row.data)
        count += 1
    for version in s.scalars(select(ConfigVersion).where(ConfigVersion.data != "")):
        version.data = box.rotate(version.data)
        count += 1
    for deploy in s.scalars(select(Deploy).where(Deploy.config_bundle != "")):
        data = json.loads(deploy.config_bundle)
        for file in data["files"]:
            file["data"] = box.rotate(file["data"])
        deploy.config_bundle = json.dumps(data)
    return count
