"""Post-deploy watches (``watch:``): the records. A deploy that succeeds in an environment
with ``watch`` starts one (``start_for``, in the transaction that writes the outcome); any
new deploy of the environment ends it (``end_for_env``, when that deploy is requested).
Workers claim due watches like jobs (``claim_due``: a lease in the database's clock, taken
by a conditional update, so one worker checks each and another carries on after a crash),
run the checks (``jobs/watch_job.py``, renewing the lease while a round runs: ``renew``) and
write what they found — only the claim that still holds the watch writes (its holder token
is the fence): ``passed`` once the window is over, or ``failed`` — which notifies
(``deploy.failed``, naming the watch) and, with ``on_failure: rollback``, queues a normal
rollback by the system actor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ferryman.config.project import parse_project
from ferryman.db import claims
from ferryman.db.clock import db_now
from ferryman.db.models import Deploy, DeployWatch, Project, Release, Space
from ferryman.db.session import Database
from ferryman.errors import FerrymanError, NotFound
from ferryman.services.audit import SYSTEM, record
from ferryman.services.project_locks import lock_project_shared

WATCHING, PASSED, FAILED, ENDED = "watching", "passed", "failed", "ended"
WATCHED_KINDS = ("deploy", "config")
# the queue of due watches (``db/claims.py``): a watching row is claimed when its next check
# is due; the claim holds it in the same state, under its holder token and lease
WATCHES = claims.Queue(DeployWatch, ready=(WATCHING,), held=WATCHING, due="next_check_at")
# A disabled space's watches wait: nothing of a space nobody may act in runs (its hosts are
# not checked, no rollback is queued); they go on if it is enabled again.
_ACTIVE = DeployWatch.project_id.in_(
    select(Project.id).join(Space, Space.id == Project.space_id).where(Space.is_active.is_(True))
)


def start_for(s: Session, deploy: Deploy) -> DeployWatch | None:
    """The watch a successful ``deploy`` asks for (None when its environment has none)."""
    if deploy.kind not in WATCHED_KINDS or not deploy.config:
        return None
    env = parse_project(deploy.config).environments.get(deploy.env)
    if env is None or env.watch is None:
        return None
    end_for_env(s, deploy.project_id, deploy.env, f"deploy #{deploy.id} succeeded")
    now = db_now(s)
    watch = DeployWatch(
        deploy_id=deploy.id,
        project_id=deploy.project_id,
        env=deploy.env,
        release=deploy.release_name,
        status=WATCHING,
        on_failure=env.watch.on_failure,
        interval=env.watch.every,
        deadline=now + timedelta(seconds=env.watch.window),
        next_check_at=now + timedelta(seconds=min(env.watch.every, env.watch.window)),
        claimed_by="",
        checks=0,
        reason="",
    )
    s.add(watch)
    return watch


def end_for_env(s: Session, project_id: int, env: str, why: str) -> int:
    """End every watch of the environment (a new deploy: it watches its own)."""
    result = s.execute(
        update(DeployWatch)
        .where(
            DeployWatch.project_id == project_id,
            DeployWatch.env == env,
            DeployWatch.status == WATCHING,
        )
        .values(status=ENDED, reason=why[:1000], ended_at=db_now(s), lease_until=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def end_for_project(s: Session, project_id: int, why: str) -> int:
    """End every watch of the project (it is deleted: nothing watches or rolls it back)."""
    result = s.execute(
        update(DeployWatch)
        .where(DeployWatch.project_id == project_id, DeployWatch.status == WATCHING)
        .values(status=ENDED, reason=why[:1000], ended_at=db_now(s), lease_until=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class Claimed:
    watch_id: int
    deploy_id: int
    checks: int
    holder: str = ""  # this claim's fencing token (``claimed_by``): only it writes the outcome


def claim_due(db: Database, worker: str, lease: float, limit: int = 20) -> list[Claimed]:
    """Take up to ``limit`` due watches for ``worker`` for ``lease`` seconds; a watch whose
    lease ran out (its worker died, or stopped renewing it) is due again. Each claim gets its
    own holder token — the worker's name and a nonce — so a claim that was lost and taken
    again, even by the same worker, can no longer write (``renew``, ``record_*``)."""
    with db.transaction() as s:
        taken = claims.claim_due(
            s, WATCHES, worker, lease, limit, read=("deploy_id", "checks"), where=(_ACTIVE,)
        )
    return [Claimed(c.id, c.row[0], c.row[1], c.holder) for c in taken]


def renew(db: Database, watch_id: int, holder: str, lease: float) -> bool:
    """Extend the lease of a round still running, in the database's clock: True while
    ``holder`` holds the watch (and it still watches), False once it was taken by another
    claim, ended by a new deploy, or is no longer this claim's — the round must then stop
    and write nothing."""
    with db.transaction() as s:
        return claims.renew(s, WATCHES, watch_id, holder, lease) is not None


def _mine(s: Session, watch_id: int, worker: str) -> DeployWatch | None:
    """The watch, locked, if ``worker`` (a claim's holder token) still holds it and it still
    watches: the fence every outcome is written behind."""
    row: DeployWatch | None = claims.held(s, WATCHES, watch_id, worker)
    return row


def record_pass(db: Database, watch_id: int, worker: str) -> str:
    """Every check passed: the next round, or ``passed`` when the window is over."""
    with db.transaction() as s:
        row = _mine(s, watch_id, worker)
        if row is None:
            return ENDED
        now = db_now(s)
        row.checks += 1
        claims.let_go(WATCHES, row)
        if now >= row.deadline:
            row.status, row.ended_at = PASSED, now
            row.reason = f"healthy through the window ({row.checks} rounds)"
            return PASSED
        row.next_check_at = min(now + timedelta(seconds=row.interval), row.deadline)
        return WATCHING


def record_failure(db: Database, watch_id: int, worker: str, host: str, why: str) -> str:
    """A check failed on ``host``: the watch fails, its release is marked bad, the space is
    told, and with ``on_failure: rollback`` a rollback is queued (by the system actor)."""
    with db.transaction() as s:
        # the project's row first, then the watch's (the lock order, project_locks.py): the
        # rollback queued below locks the project's row, and a deletion locks it and then
        # ends the project's watches — the watch's row first would let the two deadlock. A
        # watch's project never changes, so it is read unlocked; a deletion that came first
        # has ended the watch, and ``_mine`` finds it no longer watching.
        project_id = s.scalar(select(DeployWatch.project_id).where(DeployWatch.id == watch_id))
        if project_id is not None:
            lock_project_shared(s, project_id)
        row = _mine(s, watch_id, worker)
        if row is None:
            return ENDED
        deploy = s.get(Deploy, row.deploy_id)
        project = s.get(Project, row.project_id)
        if deploy is None or project is None:
            raise NotFound(f"watch #{watch_id}: its deploy #{row.deploy_id} is gone")
        now = db_now(s)
        row.checks += 1
        row.status, row.ended_at = FAILED, now
        claims.let_go(WATCHES, row, keep_holder=True)
        row.reason = f"{host}: {why}"[:1000]
        s.execute(
            update(Release)
            .where(
                Release.project_id == row.project_id,
                Release.env == row.env,
                Release.name == row.release,
            )
            .values(bad=True)
        )
        rolled: int | None = None
        refused = ""
        s.flush()
        if row.on_failure == "rollback":
            rolled, refused = _roll_back(s, project, row)
        row.rollback_id = rolled
        _notify(s, project, deploy, row, refused)
        record(
            s,
            SYSTEM,
            "watch.failed",
            f"deploy:{deploy.id}",
            space_id=project.space_id,
            project_id=project.id,
            release=row.release,
            host=host,
            reason=row.reason,
            rollback=rolled,
            refused=refused or None,
        )
        return FAILED


def _roll_back(s: Session, project: Project, row: DeployWatch) -> tuple[int | None, str]:
    """Queue a normal rollback to the release before the watched one; (its id, "") or
    (None, why it could not be queued — another deploy holds the environment)."""
    from ferryman.services.deploys import create_deploy

    try:
        with s.begin_nested():
            rollback = create_deploy(
                s,
                SYSTEM,
                project,
                row.env,
                kind="rollback",
                options={"watch": row.id},
            )
    except FerrymanError as exc:
        return None, exc.message[:500]
    return rollback.id, ""


def _notify(s: Session, project: Project, deploy: Deploy, row: DeployWatch, refused: str) -> None:
    from ferryman.services import notifications

    then = (
        f"; rollback #{row.rollback_id} queued"
        if row.rollback_id
        else (f"; no rollback: {refused}" if refused else "")
    )
    details: dict[str, Any] = {
        "deploy_id": deploy.id,
        "kind": deploy.kind,
        "ref": deploy.ref,
        "release": row.release,
        "actor": deploy.requested_by_name,
        "hosts": len(deploy.hosts or []) or "",
        "error": f"post-deploy watch failed: {row.reason}{then}",
        "host": row.reason.partition(": ")[0],
        "stage": "watch",
        "command": "",
        "stderr": "",
    }
    from ferryman.db.models import Space

    space = s.get(Space, project.space_id)
    name = space.name if space is not None else "default"
    notifications.emit(
        s, "deploy.failed", project, row.env, details, f"/s/{name}/deploys/{deploy.id}"
    )


def for_deploy(db: Database, deploy_id: int) -> list[dict[str, Any]]:
    """The watches of a deploy, newest first (what the deploy's record shows)."""
    with db.read() as s:
        rows = s.scalars(
            select(DeployWatch)
            .where(DeployWatch.deploy_id == deploy_id)
            .order_by(DeployWatch.id.desc())
        ).all()
        return [_view(r) for r in rows]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _view(row: DeployWatch) -> dict[str, Any]:
    return {
        "id": row.id,
        "deploy_id": row.deploy_id,
        "env": row.env,
        "release": row.release,
        "status": row.status,
        "on_failure": row.on_failure,
        "deadline": _iso(row.deadline),
        "checks": row.checks,
        "reason": row.reason,
        "rollback_id": row.rollback_id,
        "ended_at": _iso(row.ended_at),
    }
