"""Secret variables of a project environment: set by masters, encrypted at rest, write-only
through the API (their names are visible to every reader of the project, their values only to
whom the permissions table allows, and every such read is audited), exported to tasks and
masked in everything Ferryman stores."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ferryman.db.models import Project, Secret, SecretVersion, utcnow
from ferryman.db.session import Database
from ferryman.domain import validate
from ferryman.domain.variables import NAMES as RESERVED
from ferryman.errors import NotFound, ValidationError
from ferryman.said import said
from ferryman.services.audit import Actor, record
from ferryman.services.projects import find_project

MAX_VALUE = 64 * 1024


def _check(name: str, value: str | None = None) -> None:
    validate.variables({name: value or "x"}, RESERVED)
    if value is not None and len(value) > MAX_VALUE:
        raise ValidationError(said("%(name)s: at most %(n)s characters", name=name, n=MAX_VALUE))


def _secret(s: Session, project: Project, env: str, name: str) -> Secret:
    row = s.scalar(
        select(Secret).where(
            Secret.project_id == project.id, Secret.env == env, Secret.name == name
        )
    )
    if row is None:
        raise NotFound(
            said(
                "%(project)s %(env)s has no secret %(name)s",
                project=project.name,
                env=env,
                name=repr(name),
            )
        )
    return row


def set_secret(
    db: Database, actor: Actor, project_ref: int | str, env: str, name: str, value: str
) -> dict[str, Any]:
    _check(name, value)
    sealed = db.box.seal(value)
    with db.transaction() as s:
        project = find_project(s, actor, project_ref, "secret.manage")
        row = s.scalar(
            select(Secret).where(
                Secret.project_id == project.id, Secret.env == env, Secret.name == name
            )
        )
        created = row is None
        if row is None:
            row = Secret(project_id=project.id, env=env, name=name, value=sealed)
            s.add(row)
        row.value, row.updated_by, row.updated_at = sealed, actor.username, utcnow()
        s.flush()
        s.add(SecretVersion(secret_id=row.id, value=sealed, changed_by=actor.username))
        record(
            s,
            actor,
            "secret.create" if created else "secret.update",
            f"project:{project.name}/{env}/secret:{name}",
            space_id=project.space_id,
            project_id=project.id,
        )
        return _summary(row, s)


def _summary(row: Secret, s: Session) -> dict[str, Any]:
    versions = s.scalars(select(SecretVersion).where(SecretVersion.secret_id == row.id)).all()
    return {
        "name": row.name,
        "env": row.env,
        "value": "***",
        "updated_by": row.updated_by,
        "updated_at": row.updated_at.isoformat(),
        "versions": len(versions),
    }


def list_secrets(db: Database, actor: Actor, project_ref: int | str, env: str) -> list[Any]:
    """Names and who changed them when: never values."""
    with db.read() as s:
        project = find_project(s, actor, project_ref, "project.read")
        rows = s.scalars(
            select(Secret)
            .where(Secret.project_id == project.id, Secret.env == env)
            .order_by(Secret.name)
        ).all()
        return [_summary(r, s) for r in rows]


def reveal(db: Database, actor: Actor, project_ref: int | str, env: str, name: str) -> str:
    """The plain value, for those the table allows; the read itself is audited."""
    with db.transaction() as s:
        project = find_project(s, actor, project_ref, "secret.reveal")
        row = _secret(s, project, env, name)
        record(
            s,
            actor,
            "secret.reveal",
            f"project:{project.name}/{env}/secret:{name}",
            space_id=project.space_id,
            project_id=project.id,
        )
        sealed = row.value
    return db.box.open(sealed)


def delete_secret(db: Database, actor: Actor, project_ref: int | str, env: str, name: str) -> None:
    with db.transaction() as s:
        project = find_project(s, actor, project_ref, "secret.manage")
        row = _secret(s, project, env, name)
        s.delete(row)
        record(
            s,
            actor,
            "secret.delete",
            f"project:{project.name}/{env}/secret:{name}",
            space_id=project.space_id,
            project_id=project.id,
        )


def sealed_for(s: Session, project_id: int, env: str) -> dict[str, str]:
    """{name: sealed value} of a project environment, for a deploy's snapshot."""
    rows = s.scalars(select(Secret).where(Secret.project_id == project_id, Secret.env == env))
    return {r.name: r.value for r in rows}


def rotate_all(db: Database) -> int:
    """Re-encrypt every sealed value with the box's newest key; returns how many."""
    from ferryman.db.models import Deploy, Environment, KeyValue, NotifyChannel, Project
    from ferryman.services import config_files

    count = 0
    with db.transaction() as s:
        for secret in s.scalars(select(Secret)):
            secret.value = db.box.rotate(secret.value)
            count += 1
        for version in s.scalars(select(SecretVersion)):
            version.value = db.box.rotate(version.value)
            count += 1
        for env in s.scalars(select(Environment)):
            env.variables = {k: _maybe_rotate(db, v) for k, v in env.variables.items()}
        for deploy in s.scalars(select(Deploy)):
            if any(v.startswith("enc:") for v in deploy.variables.values()):
                deploy.variables = {k: _maybe_rotate(db, v) for k, v in deploy.variables.items()}
        count += config_files.rotate(s, db.box)
        for project in s.scalars(select(Project).where(Project.hook_secret != "")):
            project.hook_secret = _maybe_rotate(db, project.hook_secret)  # git webhook secrets
            count += 1
        for channel in s.scalars(select(NotifyChannel)):
            channel.settings = _maybe_rotate(db, channel.settings)  # notification channels
            count += 1
        for fact in s.scalars(select(KeyValue)):  # the canary, the agent signing secret…
            fact.value = _maybe_rotate(db, fact.value)
    return count


def _maybe_rotate(db: Database, value: str) -> str:
    return db.box.rotate(value) if value.startswith("enc:") else value
