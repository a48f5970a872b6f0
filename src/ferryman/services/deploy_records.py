"""What a running deploy records as it goes: the resolved commit and release name, stage and
per-host progress, log lines and command records (batched by ``pipeline.recorder``), which
release dirs exist on which host and which one each host serves. Only the worker writes these.

Every write a run makes takes the run's ``owner``: the holder token of its claim
(``services/queue.py``, ``db/claims.py``). The deploy's row is locked, and unless that claim
still holds the deploy nothing is written (``OwnershipLost``; the recorder's batch returns
False). A run frozen past its lease, whose deploy another claim took over — on another worker,
or on its own — never records a release or a live link over the new owner's repair.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ferryman.db import claims
from ferryman.db.models import Deploy, DeployHost, DeployStep, HostState, LogLine, Release, utcnow
from ferryman.db.outage import is_outage
from ferryman.db.session import Database
from ferryman.domain.records import LogRecord as LogRecord
from ferryman.domain.records import StepRecord as StepRecord
from ferryman.domain.statuses import ReleaseState
from ferryman.errors import DatabaseUnavailable, NotFound, OwnershipLost
from ferryman.services import deploy_signals
from ferryman.services.queue import DEPLOYS


def _holds(s: Session, deploy_id: int, owner: str | None) -> bool:
    """Whether the claim ``owner`` (a holder token; None: nobody is checked) holds the
    deploy; its row stays locked to the end of the transaction, so a take-over waits for
    this write or comes before it."""
    if owner is None:
        return True
    return claims.holds(s, DEPLOYS, deploy_id, owner)


def fence(s: Session, deploy_id: int, owner: str | None) -> None:
    """Raise ``OwnershipLost`` unless ``owner`` holds the deploy (see ``_holds``)."""
    if not _holds(s, deploy_id, owner):
        raise OwnershipLost(f"deploy #{deploy_id} was taken over: {owner} no longer holds it")


def set_resolved(
    db: Database, deploy_id: int, *, commit: str, release_name: str, owner: str | None = None
) -> None:
    with db.transaction() as s:
        fence(s, deploy_id, owner)
        s.execute(
            update(Deploy)
            .where(Deploy.id == deploy_id)
            .values(commit=commit, release_name=release_name)
        )


def set_hosts(db: Database, deploy_id: int, rows: dict[str, dict[str, str]]) -> None:
    """Upsert per-host rows: {host: {status, previous_release, error}}."""
    with db.transaction() as s:
        set_hosts_in(s, deploy_id, rows)


def set_hosts_in(s: Session, deploy_id: int, rows: dict[str, dict[str, str]]) -> None:
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


def append_logs(db: Database, deploy_id: int, lines: Sequence[LogRecord]) -> None:
    if not lines:
        return
    with db.transaction() as s:
        append_logs_in(s, deploy_id, lines)


def append_logs_in(s: Session, deploy_id: int, lines: Sequence[LogRecord]) -> None:
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
    owner: str | None = None,
) -> bool:
    """A recorder's batch in one transaction: all of it is written, or none (so a retry
    never writes a line twice). With ``owner`` (a claim's holder token), only while that
    claim still holds the deploy (the row is locked for the check): False, and nothing
    written, once another claim took it over — a run that lost its deploy never writes over
    the new owner's record."""
    with db.transaction() as s:
        if not _holds(s, deploy_id, owner):
            return False
        append_logs_in(s, deploy_id, lines)
        _record_steps(s, deploy_id, steps)
        if hosts:
            set_hosts_in(s, deploy_id, hosts)
        if stages is not None:
            s.execute(update(Deploy).where(Deploy.id == deploy_id).values(stages=stages))
        deploy_signals.changed(s, deploy_id)  # the console reads the batch at the commit
    return True


class DatabaseWriter:
    """The recorder's writer (``pipeline.ports.RecordWriter``) over the database: an outage
    is ``DatabaseUnavailable``, so the recorder keeps the batch and tries again."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def write_batch(
        self,
        deploy_id: int,
        lines: Sequence[LogRecord],
        steps: Sequence[StepRecord],
        hosts: dict[str, dict[str, str]],
        stages: list[dict[str, Any]] | None,
        owner: str | None,
    ) -> bool:
        try:
            return write_batch(self.db, deploy_id, lines, steps, hosts, stages, owner)
        except Exception as exc:
            if is_outage(exc):
                raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
            raise


def record_releases(
    db: Database,
    project_id: int,
    env: str,
    deploy_id: int,
    commit: str,
    name: str,
    hosts: Sequence[str],
    state: str,
    owner: str | None = None,
) -> None:
    """Mark release ``name`` on ``hosts`` as complete, failed or removed."""
    with db.transaction() as s:
        fence(s, deploy_id, owner)
        record_releases_in(s, project_id, env, deploy_id, commit, name, hosts, state)


def record_releases_in(
    s: Session,
    project_id: int,
    env: str,
    deploy_id: int,
    commit: str,
    name: str,
    hosts: Sequence[str],
    state: str,
) -> None:
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


def mark_removed(
    db: Database,
    project_id: int,
    env: str,
    removed: dict[str, list[str]],
    *,
    deploy_id: int | None = None,
    owner: str | None = None,
) -> None:
    """Record, in one transaction, the release dirs deleted from each host ({host: names}) by
    deploy ``deploy_id`` (fenced by ``owner`` when both are given)."""
    pairs = [(host, name) for host, names in removed.items() for name in names]
    if not pairs:
        return
    with db.transaction() as s:
        if deploy_id is not None:
            fence(s, deploy_id, owner)
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
                row.state = ReleaseState.REMOVED


def set_live(
    db: Database,
    project_id: int,
    env: str,
    deploy_id: int,
    live: dict[str, str | None],
    owner: str | None = None,
) -> None:
    """Record which release each host now serves (None: the webroot link was removed)."""
    with db.transaction() as s:
        fence(s, deploy_id, owner)
        set_live_in(s, project_id, env, deploy_id, live)


def set_live_in(
    s: Session, project_id: int, env: str, deploy_id: int | None, live: dict[str, str | None]
) -> None:
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


def set_options(
    db: Database, deploy_id: int, values: dict[str, Any], owner: str | None = None
) -> None:
    """Merge ``values`` into the deploy's options (a pull deploy's artifact)."""
    with db.transaction() as s:
        fence(s, deploy_id, owner)
        deploy = s.get(Deploy, deploy_id)
        if deploy is None:
            raise NotFound(f"no deploy #{deploy_id}")
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
