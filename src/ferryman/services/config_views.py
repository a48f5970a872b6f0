"""Reading config files: the list (with the ones the YAML declares but nobody set), one file
with its overrides, its history and diffs, and what each host would get now — secret values
masked in everything shown."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ferryman.db.models import ConfigFile as Stored
from ferryman.db.models import ConfigVersion
from ferryman.db.session import Database
from ferryman.domain import config_files as cf
from ferryman.domain import validate
from ferryman.domain.variables import NAMES as DEPLOY_NAMES
from ferryman.errors import NotFound
from ferryman.secretbox import is_sealed
from ferryman.services.audit import Actor
from ferryman.services.config_files import (
    decode,
    env_config,
    existing,
    host_identities,
    sealed_secrets,
    secret_masker,
    summary,
)
from ferryman.services.projects import effective_config, find_project


def list_files(db: Database, actor: Actor, project_ref: int | str, env: str) -> list[Any]:
    """Every config file of the environment, and declared ones (YAML) not set yet."""
    with db.read() as s:
        project = find_project(s, actor, project_ref, "config.read")
        declared = env_config(project, env).environment(env).config_files
        rows = s.scalars(
            select(Stored)
            .where(Stored.project_id == project.id, Stored.env == env)
            .order_by(Stored.path)
        ).all()
        out: list[dict[str, Any]] = [summary(r, r.path in declared) for r in rows]
        for row, item in zip(rows, out, strict=True):
            item["overrides"] = [o.scope for o in decode(db.box, row).overrides]
        have = {r.path for r in rows}
        out += [{"path": p, "declared": True, "missing": True} for p in declared if p not in have]
        return out


def get_file(
    db: Database, actor: Actor, project_ref: int | str, env: str, path: str
) -> dict[str, Any]:
    """The template, its overrides and the variables it refers to (secret values masked)."""
    path = cf.path(path)
    with db.read() as s:
        project = find_project(s, actor, project_ref, "config.read")
        row = existing(s, project, env, path)
        config = decode(db.box, row)
        mask = secret_masker(s, db.box, project, env)
        names = set(sealed_secrets(s, project, env))
        out = summary(row, path in env_config(project, env).environment(env).config_files)
    texts = [config.content, *(o.content or "" for o in config.overrides)]
    refs = sorted({n for t in texts for n in cf.references(t)})
    out |= {
        "content": mask(config.content),
        "overrides": [
            {
                "scope": o.scope,
                "content": None if o.content is None else mask(o.content),
                "set": {k: mask(v) for k, v in o.set.items()},
            }
            for o in config.overrides
        ],
        "references": refs,
        "secrets": [n for n in refs if n in names],
    }
    return out


def history(
    db: Database, actor: Actor, project_ref: int | str, env: str, path: str
) -> list[dict[str, Any]]:
    path = cf.path(path)
    with db.read() as s:
        project = find_project(s, actor, project_ref, "config.read")
        rows = s.scalars(
            select(ConfigVersion)
            .where(
                ConfigVersion.project_id == project.id,
                ConfigVersion.env == env,
                ConfigVersion.path == path,
            )
            .order_by(ConfigVersion.version.desc())
        ).all()
        if not rows:
            raise NotFound(f"{project.name} {env} has no config file {path!r}, now or before")
        return [
            {
                "version": r.version,
                "mode": f"{r.mode:04o}",
                "deleted": r.deleted,
                "change": r.change,
                "changed_by": r.changed_by,
                "changed_at": r.changed_at.isoformat(),
            }
            for r in rows
        ]


def diff(
    db: Database,
    actor: Actor,
    project_ref: int | str,
    env: str,
    path: str,
    old: int | None = None,
    new: int | None = None,
) -> dict[str, Any]:
    """A unified diff between two versions (default: the newest and the one before), with
    secret values masked."""
    path = cf.path(path)
    with db.read() as s:
        project = find_project(s, actor, project_ref, "config.read")
        rows = {
            r.version: r
            for r in s.scalars(
                select(ConfigVersion).where(
                    ConfigVersion.project_id == project.id,
                    ConfigVersion.env == env,
                    ConfigVersion.path == path,
                )
            )
        }
        if not rows:
            raise NotFound(f"{project.name} {env} has no config file {path!r}, now or before")
        new = max(rows) if new is None else new
        old = new - 1 if old is None else old
        for number in (old, new):
            if number != 0 and number not in rows:
                raise NotFound(f"{path} has no version {number} (has 1-{max(rows)})")

        def version(number: int) -> cf.ConfigFile | None:
            row = rows.get(number)
            return None if row is None or row.deleted else decode(db.box, row)

        text = cf.diff(version(old), version(new), f"{path} v{old}", f"{path} v{new}")
        mask = secret_masker(s, db.box, project, env)
    return {"path": path, "from": old, "to": new, "diff": mask(text)}


def preview(
    db: Database,
    actor: Actor,
    project_ref: int | str,
    env: str,
    host: str | None = None,
    path: str | None = None,
) -> list[dict[str, Any]]:
    """What each host would get now: the effective file rendered with the variables known
    before a deploy (secret values shown as ``***``; ``${RELEASE}`` and the other per-deploy
    names are filled in at deploy time)."""
    from ferryman.services.deploys import space_environment

    wanted = cf.path(path) if path else None
    with db.read() as s:
        project = find_project(s, actor, project_ref, "config.read")
        config = effective_config(s, project)
        environment = config.environment(env)
        idents = host_identities(s, project, config, env)
        if host is not None:
            key = validate.host(host).key
            matched = [i for i in idents.values() if i.key == key or host in i.names]
            if not matched:
                raise NotFound(f"{host!r} is not a host of {project.name} {env}")
            idents = {m.key: m for m in matched}
        files = [
            decode(db.box, r)
            for r in s.scalars(
                select(Stored)
                .where(Stored.project_id == project.id, Stored.env == env)
                .order_by(Stored.path)
            )
            if wanted is None or r.path == wanted
        ]
        if wanted and not files:
            raise NotFound(f"{project.name} {env} has no config file {wanted!r}")
        variables = space_environment(s, project, env).variables
        plain = {k: v for k, v in variables.items() if not is_sealed(v)}
        secret_names = set(sealed_secrets(s, project, env))
        mask = secret_masker(s, db.box, project, env)
    base = {**plain, **dict.fromkeys(secret_names, "***")}
    base |= {
        "PROJECT": config.project,
        "ENV": env,
        "WEBROOT": environment.webroot,
        "RELEASES": environment.releases,
    }
    out = []
    for ident in idents.values():
        for file in files:
            template, scopes = cf.effective(file, ident)
            text, unknown = cf.render(template, {**base, "HOST": ident.key})
            out.append(
                {
                    "host": ident.key,
                    "path": file.path,
                    "mode": f"{file.mode:04o}",
                    "overrides": scopes,
                    "content": mask(text),
                    "at_deploy": [n for n in unknown if n in DEPLOY_NAMES],
                    "unknown": [n for n in unknown if n not in DEPLOY_NAMES],
                }
            )
    return out
