"""Gray releases as records: the plan made when a deploy is queued, the state the worker keeps
after every batch, the pause (the job is let go: no worker holds a paused rollout, so a pause
survives any restart), and what people ask of it — continue, abort, roll back now."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ferryman.config.project import ProjectConfig
from ferryman.db.models import Deploy, Project, Release
from ferryman.db.session import Database
from ferryman.domain import rollout as rules
from ferryman.domain.statuses import DeployStatus
from ferryman.errors import Conflict, ValidationError
from ferryman.services import deploy_records, deploy_signals, locks
from ferryman.services.audit import Actor, record

ACTIONS = {
    "continue": "rollout.continue",
    "abort": "rollout.abort",
    "rollback": "deploy.rollback",
}


def plan_for(
    s: Session, project: Project, config: ProjectConfig, env: str, chosen: Sequence[str] | None
) -> dict[str, Any] | None:
    """The batches of a deploy to ``env`` (None without a strategy, health checks or
    ``verify_served``)."""
    from ferryman.services.config_files import host_identities

    environment = config.environment(env)
    checked = environment.health_check or environment.verify_served is not None
    if environment.strategy is None and not checked:
        return None
    hosts = [h.key for h in environment.hosts if not chosen or h.key in chosen]
    idents = host_identities(s, project, config, env)
    strategy = environment.strategy
    if strategy is None:
        batches = [hosts]
    else:
        try:
            canary = rules.canary_hosts(
                strategy.canary,
                hosts,
                {k: i.names for k, i in idents.items()},
                {k: i.labels for k, i in idents.items()},
            )
            batches = rules.plan(hosts, canary, strategy.batches)
        except ValidationError as exc:
            raise ValidationError(f"{project.name} {env}: {exc.message}") from None
    return rules.Rollout(batches=batches).to_dict()


def save(db: Database, deploy_id: int, state: rules.Rollout, owner: str | None = None) -> None:
    """The rollout's progress, written only while ``owner`` holds the deploy."""
    with db.transaction() as s:
        deploy_records.fence(s, deploy_id, owner)
        s.execute(update(Deploy).where(Deploy.id == deploy_id).values(rollout=state.to_dict()))


def pause(
    db: Database,
    deploy_id: int,
    state: rules.Rollout,
    holder: str,
    lock: tuple[str, str] | None = None,
) -> None:
    """Let the job go, paused, while the claim ``holder`` (its token) still holds it: no
    worker holds it until someone continues or aborts it; its project lock ``(key, owner)``
    is released in the same transaction."""
    with db.transaction() as s:
        if lock is not None:
            locks.release_in(s, lock[0], owner=lock[1])
        s.execute(
            update(Deploy)
            .where(Deploy.id == deploy_id, Deploy.claimed_by == holder, Deploy.claimed_by != "")
            .values(
                status=DeployStatus.PAUSED,
                rollout=state.to_dict(),
                worker="",
                claimed_by="",
                lease_expires_at=None,
            )
        )
        deploy_signals.changed(s, deploy_id)  # its console ends: paused
        from ferryman.services import notifications

        deploy = s.get(Deploy, deploy_id)
        if deploy is not None and deploy.status == DeployStatus.PAUSED:
            notifications.deploy_event(s, "rollout.paused", deploy)


def take_request(db: Database, deploy_id: int) -> str:
    """What someone asked of a running rollout (``continue``, ``abort``, ``rollback``), once."""
    with db.transaction() as s:
        deploy = s.get(Deploy, deploy_id)
        if deploy is None or not deploy.rollout_request:
            return ""
        asked = deploy.rollout_request
        deploy.rollout_request = ""
        return asked


def request(db: Database, actor: Actor, deploy_id: int, action: str) -> Deploy:
    """Continue a paused rollout, abort it (its ``on_failure``), or roll it back now (every
    switched host back, whatever ``on_failure`` says). A paused one is queued again for any
    worker to pick up; a running one sees the request at its next step."""
    from ferryman.services.authz import hidden, require

    if action not in ACTIONS:
        raise ValidationError(f"action: one of {', '.join(ACTIONS)}")
    with db.transaction() as s:
        deploy = s.get(Deploy, deploy_id)
        project = s.get(Project, deploy.project_id) if deploy else None
        if deploy is None or project is None:
            raise hidden(f"deploy #{deploy_id}")
        require(s, actor, ACTIONS[action], project=project, what=f"deploy #{deploy_id}")
        if deploy.rollout is None:
            raise Conflict(f"deploy #{deploy_id} is not a gray release")
        if deploy.status == DeployStatus.PAUSED:
            deploy.status = DeployStatus.QUEUED
            deploy.rollout_request = action
        elif deploy.status == DeployStatus.RUNNING and action != "continue":
            deploy.rollout_request = action
        elif deploy.status in (DeployStatus.RUNNING, DeployStatus.QUEUED) and action == "continue":
            raise Conflict(f"deploy #{deploy_id} is not paused; nothing to continue")
        else:
            raise Conflict(f"deploy #{deploy_id} is {deploy.status}; its rollout is over")
        record(
            s,
            actor,
            f"rollout.{action}",
            f"deploy:{deploy_id}",
            space_id=project.space_id,
            project_id=project.id,
            batch=(deploy.rollout or {}).get("next_batch"),
        )
        return deploy


def mark_bad(
    db: Database,
    project_id: int,
    env: str,
    release: str,
    *,
    deploy_id: int | None = None,
    owner: str | None = None,
) -> None:
    """A release whose rollout aborted: rollbacks do not go back to it unless forced (marked
    by deploy ``deploy_id``, fenced by ``owner`` when both are given)."""
    with db.transaction() as s:
        if deploy_id is not None:
            deploy_records.fence(s, deploy_id, owner)
        s.execute(
            update(Release)
            .where(Release.project_id == project_id, Release.env == env, Release.name == release)
            .values(bad=True)
        )


def bad_releases(db: Database, project_id: int, env: str) -> set[str]:
    with db.read() as s:
        return set(
            s.scalars(
                select(Release.name).where(
                    Release.project_id == project_id, Release.env == env, Release.bad.is_(True)
                )
            )
        )
