"""Promotion (QA → approval → production): an environment with ``requires_passed: test``
takes a commit only after a deploy of that very commit succeeded in ``test`` (and was not
found broken after: its post-deploy watch failed, its release marked bad), and a
successful deploy (not found broken so) becomes a ticket for another environment carrying
exactly its commit.

The gate is checked where deploys and tickets are made (``deploys.create_deploy``,
``tickets.create_ticket``), so a direct deploy, a ticket for another ref, a retry and a
ticket's deploy all meet it; rollbacks and config-only deploys (the live commit again)
never do.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.orm import Session

from ferryman.config.project import ProjectConfig
from ferryman.config.settings import Settings
from ferryman.db.models import Deploy, DeployWatch, Project, Release
from ferryman.db.session import Database
from ferryman.domain import validate
from ferryman.domain.statuses import DeployStatus, WatchStatus
from ferryman.errors import Conflict, ValidationError
from ferryman.services.audit import Actor

GATED_KINDS = ("deploy",)  # a rollback or a config-only deploy ships nothing new


def _broken(deploy_id: Any) -> ColumnElement[bool]:
    """Whether the deploy was found broken after it succeeded: its post-deploy watch failed,
    or its release was marked bad."""
    return or_(
        exists().where(
            DeployWatch.deploy_id == deploy_id, DeployWatch.status == WatchStatus.FAILED
        ),
        exists().where(Release.deploy_id == deploy_id, Release.bad.is_(True)),
    )


def found_broken(s: Session, deploy_id: int) -> bool:
    return bool(s.scalar(select(_broken(deploy_id))))


def passed_in(s: Session, project_id: int, env: str, commit: str) -> Deploy | None:
    """The newest successful deploy of ``commit`` to ``env`` (None: it never passed there).
    Only a deploy of the commit counts: a config-only deploy ships the live release again
    with the current config files, whatever put that release there, so it passes nothing.
    Nor does a deploy found broken after it succeeded: its post-deploy watch failed, or its
    release was marked bad."""
    return s.scalar(
        select(Deploy)
        .where(
            Deploy.project_id == project_id,
            Deploy.env == env,
            Deploy.commit == commit,
            Deploy.kind == "deploy",
            Deploy.status == DeployStatus.SUCCESS,
            ~_broken(Deploy.id),
        )
        .order_by(Deploy.id.desc())
        .limit(1)
    )


def require_passed(
    s: Session, project: Project, config: ProjectConfig, env: str, kind: str, commit: str
) -> None:
    """Refuse (``Conflict``) a ``kind`` of deploy of ``commit`` to ``env`` when the env
    requires another to have passed it first and no deploy of it succeeded there."""
    required = config.environment(env).requires_passed
    if not required or kind not in GATED_KINDS:
        return
    if not commit:
        raise Conflict(
            f"{project.name} {env} takes only commits that passed {required}, and this "
            "deploy names no commit",
            env=env,
            requires_passed=required,
        )
    if passed_in(s, project.id, required, commit) is None:
        raise Conflict(
            f"{project.name} {env} requires commit {commit[:12]} to pass {required} first: "
            f"no deploy of it to {required} succeeded "
            f"(`ferryman deploy {project.name} --env {required} --ref {commit}`)",
            env=env,
            requires_passed=required,
            commit=commit,
        )


async def pinned_commit(
    db: Database, settings: Settings, actor: Actor, project_ref: int | str, env: str, ref: str
) -> str:
    """The commit a direct deploy of ``ref`` to a gated environment is pinned to ("" when
    ``env`` has no ``requires_passed``): resolved now, checked now, and shipped exactly —
    a branch that moves between the request and the checkout cannot slip a commit past."""
    from ferryman.services import projects, repos
    from ferryman.services.space_access import space_access

    validate.ref(ref)
    project, config = await asyncio.to_thread(
        projects.project_config, db, actor, project_ref, "deploy.direct"
    )
    if not config.environment(env).requires_passed:
        return ""
    space = await asyncio.to_thread(space_access, db, settings, project.space_id)
    return (await repos.resolve(settings, config, env, ref, space=space)).commit


def _source(db: Database, actor: Actor, deploy_id: int, env: str) -> tuple[Deploy, Project]:
    from ferryman.services.authz import hidden, require

    with db.read() as s:
        deploy = s.get(Deploy, deploy_id)
        project = s.get(Project, deploy.project_id) if deploy else None
        if deploy is None or project is None:
            raise hidden(f"deploy #{deploy_id}")
        require(s, actor, "ticket.create", project=project, what=f"deploy #{deploy_id}")
        if deploy.kind != "deploy" or deploy.status != DeployStatus.SUCCESS or not deploy.commit:
            raise Conflict(
                f"deploy #{deploy_id} is a {deploy.kind} that is {deploy.status}; only a "
                "successful deploy of a commit is promoted",
                deploy_id=deploy_id,
            )
        if found_broken(s, deploy.id):
            raise Conflict(
                f"deploy #{deploy_id} succeeded, but its post-deploy watch failed (or its "
                "release was marked bad); only a deploy that stayed good is promoted",
                deploy_id=deploy_id,
            )
        if env == deploy.env:
            raise ValidationError(f"env: deploy #{deploy_id} is already in {env}; name another")
        s.expunge_all()
        return deploy, project


async def promote(
    db: Database,
    settings: Settings,
    actor: Actor,
    deploy_id: int,
    env: str,
    *,
    title: str = "",
    description: str = "",
    draft: bool = False,
) -> dict[str, Any]:
    """A ticket for ``env`` from a successful deploy: the same commit (its full id is the
    ticket's ref, so nothing is resolved anew), every host of ``env``, waiting for approval
    where ``env`` needs it; its preview (``GET /tickets/{id}/preview``) compares that commit
    with what ``env`` runs."""
    from ferryman.services import tickets

    source, project = await asyncio.to_thread(_source, db, actor, deploy_id, env)
    name = source.ref if source.ref and source.ref != source.commit else source.commit[:12]
    made = await tickets.create_ticket(
        db,
        settings,
        actor,
        project.id,
        env,
        source.commit,
        title=title.strip() or f"Promote {name} from {source.env} (deploy #{source.id})"[:200],
        description=description
        or f"{source.env} deploy #{source.id} of {source.ref or source.commit} "
        f"({source.commit}) succeeded",
        draft=draft,
        promoted_from=source.id,
    )
    return made
