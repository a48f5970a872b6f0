"""What a running deploy records as it goes: the resolved commit and release name, stage and
per-host progress, log lines and command records (batched by ``pipeline.recorder``), which
release dirs exist on which host and which one each host serves. Only the worker writes these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ferryman.db.models import Deploy, DeployHost, DeployStep, HostState, LogLine, Release, utcnow
from ferryman.db.session import Database


def set_resolved(db: Database, deploy_id: int, *, commit: str, release_name: str) -> None:
    with db.transaction() as s:
        s.execute(
            update(Deploy)
            .where(Deploy.id == deploy_id)
            .values(commit=commit, release_name=release_name)
        )


def set_stages(db: Database, deploy_id: int, stages: list[dict[str, Any]]) -> None:
    with db.transaction() as s:
        s.execute(update(Deploy).where(Deploy.id == deploy_id).values(stages=stages))


def set_hosts(db: Database, deploy_id: int, rows: dict[str, dict[str, str]]) -> None:
    """Upsert per-host rows: {host: {status, previous_release, error}}."""
    with db.transaction() as s:
        _set_hosts(s, deploy_id, rows)


def _set_hosts(s: Session, deploy_id: int, rows: dict[str, dict[str, str]]) -> None:
    existing = {
        h.host: h for h in s.scalars(select(DeployHost).where(DeployHost.deploy_id == deploy_id))
    }
    for host, values in rows.items():
        row = existing.get(host)
        if row is None:
            row = DeployHost(deploy_id=deploy_id, host=host)
            s.add(row)
        for key, value in values.items():
            setattr(row, key, value)


@dataclass(frozen=True)
class LogRecord:
    host: str
    stage: str
    text: str
    ts: datetime
    stream: str = ""  # stdout | stderr of a command; "" for Ferryman's own lines


def append_logs(db: Database, deploy_id: int, lines: Sequence[LogRecord]) -> None:
    if not lines:
        return
    with db.transaction() as s:
        _append_logs(s, deploy_id, lines)


def _append_logs(s: Session, deploy_id: int, lines: Sequence[LogRecord]) -> None:
    s.add_all(
        LogLine(
            deploy_id=deploy_id,
            host=r.host,
            stage=r.stage,
            stream=r.stream,
            text=r.text[:4000],
            ts=r.ts,
        )
        for r in lines
    )


@dataclass(frozen=True)
class StepRecord:
    host: str
    stage: str
    command: str
    exit_status: int | None
    output: str
    started_at: datetime
    duration: float


def record_steps(db: Database, deploy_id: int, steps: Sequence[StepRecord]) -> None:
    if not steps:
        return
    with db.transaction() as s:
        _record_steps(s, deploy_id, steps)


def _record_steps(s: Session, deploy_id: int, steps: Sequence[StepRecord]) -> None:
    s.add_all(
        DeployStep(
            deploy_id=deploy_id,
            host=r.host,
            stage=r.stage,
            command=r.command,
            exit_status=r.exit_status,
            output=r.output,
            started_at=r.started_at,
            duration=r.duration,
        )
        for r in steps
    )


def write_batch(
    db: Database,
    deploy_id: int,
    lines: Sequence[LogRecord],
    steps: Sequence[StepRecord],
    hosts: dict[str, dict[str, str]],
    stages: list[dict[str, Any]] | None,
) -> None:
    """A recorder's batch in one transaction: all of it is written, or none (so a retry
    never writes a line twice)."""
    with db.transaction() as s:
        _append_logs(s, deploy_id, lines)
        _record_steps(s, deploy_id, steps)
        if hosts:
            _set_hosts(s, deploy_id, hosts)
        if stages is not None:
            s.execute(update(Deploy).where(Deploy.id == deploy_id).values(stages=stages))


def record_releases(
    db: Database,
    project_id: int,
    env: str,
    deploy_id: int,
    commit: str,
    name: str,
    hosts: Sequence[str],
    state: str,
) -> None:
    """Mark release ``name`` on ``hosts`` as complete, failed or removed."""
    with db.transaction() as s:
        existing = {
            r.host: r
            for r in s.scalars(
                select(Release).where(
                    Release.project_id == project_id,
                    Release.env == env,
                    Release.name == name,
                    Release.host.in_(list(hosts)),
                )
            )
        }
        for host in hosts:
            row = existing.get(host)
            if row is None:
                s.add(
                    Release(
                        project_id=project_id,
                        env=env,
                        host=host,
                        name=name,
                        deploy_id=deploy_id,
                        commit=commit,
                        state=state,
                    )
                )
            else:
                row.state = state


def mark_removed(db: Database, project_id: int, env: str, removed: dict[str, list[str]]) -> None:
    """Record, in one transaction, the release dirs deleted from each host ({host: names})."""
    pairs = [(host, name) for host, names in removed.items() for name in names]
    if not pairs:
        return
    with db.transaction() as s:
        rows = s.scalars(
            select(Release).where(
                Release.project_id == project_id,
                Release.env == env,
                Release.host.in_(list(removed)),
            )
        ).all()
        wanted = set(pairs)
        for row in rows:
            if (row.host, row.name) in wanted:
                row.state = "removed"


def set_live(
    db: Database, project_id: int, env: str, deploy_id: int, live: dict[str, str | None]
) -> None:
    """Record which release each host now serves (None: the webroot link was removed)."""
    with db.transaction() as s:
        for host, name in live.items():
            row = s.get(HostState, (project_id, env, host))
            if name is None:
                if row is not None:
                    s.delete(row)
                continue
            if row is None:
                s.add(
                    HostState(
                        project_id=project_id,
                        env=env,
                        host=host,
                        current_release=name,
                        deploy_id=deploy_id,
                    )
                )
            else:
                row.current_release = name
                row.deploy_id = deploy_id
                row.updated_at = utcnow()


def set_options(db: Database, deploy_id: int, values: dict[str, Any]) -> None:
    """Merge ``values`` into the deploy's options (a pull deploy's artifact)."""
    with db.transaction() as s:
        deploy = s.get(Deploy, deploy_id)
        assert deploy is not None
        deploy.options = {**(deploy.options or {}), **values}


SCRUBBED = "host_errors_masked"


def mask_stored_host_errors(db: Database) -> int:
    """Once per database, with the secret key loaded: mask the per-host errors (and gray
    release failures) that workers before 0.14 stored with a failing hook's stderr as it was.
    Returns how many rows changed. Migrations cannot do this: they run before the key."""
    from ferryman.db.models import KeyValue
    from ferryman.services.deploy_views import secret_masker

    changed = 0
    with db.transaction() as s:
        if s.get(KeyValue, SCRUBBED) is not None:
            return 0
        deploys = s.scalars(select(Deploy).where(Deploy.secret_names.is_not(None))).all()
        for deploy in deploys:
            if not deploy.secret_names:
                continue
            mask = secret_masker(db, deploy)
            for row in s.scalars(select(DeployHost).where(DeployHost.deploy_id == deploy.id)):
                masked = mask(row.error or "")
                if masked != (row.error or ""):
                    row.error = masked
                    changed += 1
            failed = (deploy.rollout or {}).get("failed")
            if isinstance(failed, dict):
                clean = {k: mask(str(v)) for k, v in failed.items()}
                if clean != failed:
                    deploy.rollout = {**(deploy.rollout or {}), "failed": clean}
                    changed += 1
        s.add(KeyValue(key=SCRUBBED, value="1"))
    return changed
