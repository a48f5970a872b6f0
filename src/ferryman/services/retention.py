"""Retention (``FERRYMAN_LOG_RETENTION``, e.g. ``180d``): what the workers prune, once an hour.

**Logs.** The log lines and command records (``deploy_steps``) of a deploy that ended longer
ago than the retention are deleted, in batches of ``BATCH`` rows, each batch its own short
transaction (never one DELETE holding locks over millions of rows). Never pruned: a deploy
that has not ended (queued, running, paused), the newest deploy of each project environment,
and a deploy whose release a host serves now (``host_state``). The deploy row stays, with its
hosts, releases, stages, error, ticket and audit rows: the audit log and every list still
read it whole. Its ``logs_pruned_at`` is set and one log line says what happened, so the
console shows why the log is short. An environment whose project YAML says ``log_retention:``
(``400d``, ``off``) keeps its logs longer than the server's setting says, never shorter
(``kept_for``: the server's is the operator's floor; with the server's ``off`` nothing is
pruned).

**Artifacts.** Beside the logs, every run removes what nobody can use any more: the pull-mode
packages (``artifacts/deploy-N``) and kept failed builds (``builds/deploy-N``) of deploys whose
log was pruned, whose project was deleted, or which no longer exist; and the parked trees of
the incremental checkout (``trees/<space>/<project>-<env digest>``) of deleted projects and of
environments a project no longer has. These are removed whether or not a retention is set:
nothing can ever use them.

**Git mirrors.** The cached mirrors (``repos/<space id>/<url digest>.git``, one per space and
repository URL: ``vcs/factory.mirror_path``) that no live project of their space names as
its repository any more (deleted projects, changed URLs) and no deploy queued, running or
paused uses (by the URL its own configuration holds) go too. Each is locked first with the
lock a fetch or clone takes (``<digest>.git.lock``, an flock; one held is skipped, as in
use), then the database is read, then it is removed under the lock: a deploy that got to its
fetch before the lock is active in the database by then, and one that comes after waits for
the lock and clones afresh. The lock files stay (unlinking a lock another process may be
waiting on would let two clone at once; they are empty). Svn keeps no cache: nothing to sweep.

**Two workers.** A run is claimed in ``server_facts`` (``retention.next_run``, a conditional
update), so one worker prunes an hour at a time. Two pruning at once anyway (a claim lost to a
clock, a manual run) is harmless: deleting rows already deleted deletes nothing, and the
conditional update of ``logs_pruned_at`` lets one of them write the note.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    delete,
    exists,
    func,
    insert,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from ferryman.config.retention import parse_retention
from ferryman.config.settings import Settings
from ferryman.db.clock import db_now
from ferryman.db.models import (
    Deploy,
    DeployStep,
    HostState,
    KeyValue,
    LogLine,
    Project,
)
from ferryman.db.session import Database, rowcount
from ferryman.domain.statuses import DEPLOY_ACTIVE
from ferryman.services.audit import SYSTEM, record
from ferryman.vcs.factory import mirror_path

log = logging.getLogger(__name__)

BATCH = 5000  # rows per DELETE
DEPLOYS = 200  # deploys looked at per round
EVERY = timedelta(hours=1)
CLAIM = "retention.next_run"
_DEPLOY_DIR = re.compile(r"deploy-([0-9]{1,18})")
_SLOT = re.compile(r"([0-9]{1,18})-([0-9a-f]{16})")
_ID = re.compile(r"[1-9][0-9]{0,17}")  # as mirror_path writes a space's id
_MIRROR = re.compile(r"[0-9a-f]{24}\.git")


@dataclass
class Pruned:
    """What one run removed."""

    deploys: int = 0  # deploys whose log was pruned
    lines: int = 0
    steps: int = 0
    artifacts: int = 0  # pull-mode packages
    builds: int = 0  # kept failed builds
    trees: int = 0  # parked trees
    mirrors: int = 0  # git mirrors

    @property
    def anything(self) -> bool:
        return any(asdict(self).values())


def claim_run(db: Database, every: timedelta = EVERY) -> bool:
    """Whether this caller runs the retention now: the first to move ``retention.next_run``
    past the database's clock does, once per ``every``."""
    with db.transaction() as s:
        now = db_now(s)
        row = s.get(KeyValue, CLAIM)
        following = _stamp(now + every)
        if row is None:
            s.add(KeyValue(key=CLAIM, value=following))
            try:
                s.flush()
            except IntegrityError:  # another worker inserted it first
                return False
            return True
        if row.value > _stamp(now):
            return False
        done = s.execute(
            update(KeyValue)
            .where(KeyValue.key == CLAIM, KeyValue.value == row.value)
            .values(value=following)
        )
        return rowcount(done) == 1


def _stamp(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%S.%f}"  # one width: compared as text


Pair = tuple[int, str]  # (project id, environment)


def overrides(db: Database) -> dict[Pair, timedelta | None]:
    """The environments whose project's YAML says ``log_retention:`` (None: ``off``, kept for
    ever): theirs wins over the server's for their deploys."""
    found: dict[Pair, timedelta | None] = {}
    with db.read() as s:
        rows = s.execute(
            select(Project.id, Project.config).where(Project.deleted_at.is_(None))
        ).all()
    for project_id, config in rows:
        for env, values in ((config or {}).get("environments") or {}).items():
            text = values.get("log_retention") if isinstance(values, dict) else None
            if isinstance(text, str):
                try:
                    found[(int(project_id), str(env))] = parse_retention(text)
                except ValueError:  # checked at apply; an older row is left alone
                    continue
    return found


def kept_for(server: timedelta | None, environment: timedelta | None) -> timedelta | None:
    """How long an environment with its own ``log_retention:`` keeps its logs: never less
    than the server keeps (the operator's floor — a master's YAML cannot erase what the
    operator keeps, a record of every command run on the fleet), longer when it asks."""
    if server is None or environment is None:
        return None
    return max(server, environment)


def _pair_is(pair: Pair) -> ColumnElement[bool]:
    return and_(Deploy.project_id == pair[0], Deploy.env == pair[1])


def prunable(
    cutoff: datetime, after: int, *, only: Pair | None = None, skip: Sequence[Pair] = ()
) -> Select[Any]:
    """Deploys (ids above ``after``) whose log may go: ended before ``cutoff``, not pruned
    yet, a newer deploy in their project environment, and no host serving their release;
    ``only`` one environment's, or every one but those in ``skip``."""
    newer = aliased(Deploy)
    scope = [_pair_is(only)] if only else [not_(or_(*map(_pair_is, skip)))] if skip else []
    return (
        select(Deploy.id)
        .where(
            *scope,
            Deploy.id > after,
            Deploy.logs_pruned_at.is_(None),
            Deploy.status.not_in(DEPLOY_ACTIVE),
            func.coalesce(Deploy.finished_at, Deploy.created_at) < cutoff,
            exists().where(
                newer.project_id == Deploy.project_id,
                newer.env == Deploy.env,
                newer.id > Deploy.id,
            ),
            ~exists().where(HostState.deploy_id == Deploy.id),
        )
        .order_by(Deploy.id)
        .limit(DEPLOYS)
    )


def prune_logs(
    db: Database,
    keep: timedelta,
    *,
    now: datetime | None = None,
    batch: int = BATCH,
    stopping: Callable[[], bool] = lambda: False,
    only: Pair | None = None,
    skip: Sequence[Pair] = (),
    setting: str = "FERRYMAN_LOG_RETENTION",
) -> Pruned:
    """Delete the log lines and command records of deploys that ended more than ``keep``
    ago (see the module's docstring for what is never touched); ``only``/``skip`` as in
    ``prunable``, ``setting`` named in the note left on each deploy."""
    done = Pruned()
    with db.read() as s:
        cutoff = (now or db_now(s)) - keep
    after = 0
    while not stopping():
        with db.read() as s:
            ids: list[int] = list(s.scalars(prunable(cutoff, after, only=only, skip=skip)))
        if not ids:
            break
        after = ids[-1]
        done.lines += _delete_rows(db, LogLine, ids, batch, stopping)
        done.steps += _delete_rows(db, DeployStep, ids, batch, stopping)
        if stopping():
            break
        done.deploys += _mark(db, ids, keep, setting)
    return done


def _delete_rows(
    db: Database,
    table: type[LogLine] | type[DeployStep],
    deploy_ids: list[int],
    batch: int,
    stopping: Callable[[], bool],
) -> int:
    """Delete ``table``'s rows of these deploys, ``batch`` rows per transaction.

    A deploy another worker has already marked is left alone: its only line is that
    worker's note, which must stay."""
    removed = 0
    unmarked = select(Deploy.id).where(Deploy.id.in_(deploy_ids), Deploy.logs_pruned_at.is_(None))
    while not stopping():
        with db.transaction() as s:
            rows = list(
                s.scalars(select(table.id).where(table.deploy_id.in_(unmarked)).limit(batch))
            )
            if not rows:
                break
            gone = s.execute(delete(table).where(table.id.in_(rows)))
        removed += rowcount(gone)  # 0 where another worker was first
    return removed


def _mark(db: Database, deploy_ids: list[int], keep: timedelta, setting: str) -> int:
    """Say on each deploy that its log was pruned (once, whoever else prunes at once)."""
    marked = 0
    with db.transaction() as s:
        now = db_now(s)
        note = (
            f"The log of this deploy was removed on {now:%Y-%m-%d}: it ended more than "
            f"{keep.days} days ago ({setting})."
        )
        for deploy_id in deploy_ids:
            won = s.execute(
                update(Deploy)
                .where(Deploy.id == deploy_id, Deploy.logs_pruned_at.is_(None))
                .values(logs_pruned_at=now)
            )
            if rowcount(won) == 1:
                s.execute(insert(LogLine).values(deploy_id=deploy_id, ts=now, text=note))
                marked += 1
    return marked


def sweep_artifacts(db: Database, settings: Settings) -> Pruned:
    """Remove the packages, kept builds, parked trees and git mirrors nothing can use any
    more."""
    done = Pruned()
    for folder, field in (
        (settings.home / "artifacts", "artifacts"),
        (settings.kept_builds, "builds"),
    ):
        found = _deploy_dirs(folder)
        if not found:
            continue
        with db.read() as s:
            keep = set(
                s.scalars(
                    select(Deploy.id)
                    .join(Project, Project.id == Deploy.project_id)
                    .where(
                        Deploy.id.in_(list(found)),
                        Deploy.logs_pruned_at.is_(None),
                        Project.deleted_at.is_(None),
                    )
                )
            )
        for deploy_id, path in found.items():
            if deploy_id not in keep:
                shutil.rmtree(path, ignore_errors=True)
                setattr(done, field, getattr(done, field) + 1)
    done.trees = _sweep_trees(db, settings.home / "trees")
    done.mirrors = sweep_mirrors(db, settings.repo_cache)
    return done


def _deploy_dirs(folder: Path) -> dict[int, Path]:
    if not folder.is_dir():
        return {}
    found: dict[int, Path] = {}
    for each in folder.iterdir():
        match = _DEPLOY_DIR.fullmatch(each.name)
        if match and each.is_dir() and not each.is_symlink():
            found[int(match.group(1))] = each
    return found


def _sweep_trees(db: Database, root: Path) -> int:
    """Parked trees of deleted projects and of environments their project no longer has
    (never while the project has a deploy queued, running or paused)."""
    from ferryman.pipeline.parked_trees import slot_name

    if not root.is_dir():
        return 0
    slots: list[tuple[int, int, Path]] = []
    for space in root.iterdir():
        if not space.name.isdigit() or not space.is_dir() or space.is_symlink():
            continue
        for each in space.iterdir():
            match = _SLOT.fullmatch(each.name)
            if match and each.is_dir() and not each.is_symlink():
                slots.append((int(space.name), int(match.group(1)), each))
    if not slots:
        return 0
    with db.read() as s:
        wanted = {project_id for _space, project_id, _path in slots}
        rows = s.execute(
            select(Project.id, Project.space_id, Project.deleted_at, Project.config).where(
                Project.id.in_(wanted)
            )
        ).all()
        busy = set(
            s.scalars(
                select(Deploy.project_id).where(
                    Deploy.project_id.in_(wanted), Deploy.status.in_(DEPLOY_ACTIVE)
                )
            )
        )
    live: set[tuple[int, str]] = set()
    for project_id, space_id, deleted_at, config in rows:
        if project_id in busy:  # a deploy may be parking or taking its tree right now
            live.update((space_id, p.name) for p in root.glob(f"{space_id}/{project_id}-*"))
        elif deleted_at is None:
            for env in (config or {}).get("environments", {}):
                live.add((space_id, slot_name(project_id, str(env))))
    removed = 0
    for space_id, _project_id, path in slots:
        if (space_id, path.name) not in live:
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def sweep_mirrors(db: Database, root: Path) -> int:
    """Remove the git mirrors under ``root`` that no live project of their space and no
    active deploy uses (see the module's docstring for the locking); returns how many."""
    mirrors: list[tuple[int, Path]] = []
    if root.is_dir():
        for space in root.iterdir():
            if not _ID.fullmatch(space.name) or not space.is_dir() or space.is_symlink():
                continue
            for each in space.iterdir():
                if _MIRROR.fullmatch(each.name) and each.is_dir() and not each.is_symlink():
                    mirrors.append((int(space.name), each))
    if not mirrors:
        return 0
    held: dict[Path, int] = {}  # mirror → the descriptor of its lock, held
    try:
        for _space, path in mirrors:
            fd = _try_lock(path.with_name(path.name + ".lock"))
            if fd is not None:
                held[path] = fd
        if not held:
            return 0
        used = _mirrors_in_use(db, root)
        removed = 0
        for path in held:
            if path in used:
                continue
            shutil.rmtree(path, ignore_errors=True)
            shutil.rmtree(path.with_name(path.name + ".cloning"), ignore_errors=True)
            removed += not path.exists()
        return removed
    finally:
        for fd in held.values():
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _try_lock(path: Path) -> int | None:
    """The descriptor of ``path`` locked (flock, exclusive), or None: someone holds it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _mirrors_in_use(db: Database, root: Path) -> set[Path]:
    """The mirror of every live project's repository in its space, and of every active
    deploy's (its own configuration's URL: the project's may have changed since)."""
    with db.read() as s:
        live = s.execute(
            select(Project.space_id, Project.config).where(Project.deleted_at.is_(None))
        ).all()
        active = s.execute(
            select(Project.space_id, Deploy.config, Project.config)
            .join(Project, Project.id == Deploy.project_id)
            .where(Deploy.status.in_(DEPLOY_ACTIVE))
        ).all()
    used: set[Path] = set()
    for space_id, *configs in [*live, *active]:
        for config in configs:
            url = (config or {}).get("repo") if isinstance(config, dict) else None
            if isinstance(url, str) and url:
                used.add(mirror_path(root, url, int(space_id)))
    return used


def run(
    db: Database,
    settings: Settings,
    *,
    now: datetime | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> Pruned:
    """One run: the logs past ``settings.log_retention`` (if set) — or past an environment's
    own ``log_retention:`` for its deploys — then the artifacts; one audit row
    (``retention.prune``, by ``system``) when anything went."""
    done = Pruned()
    server = settings.log_retention
    own = overrides(db)
    if server is not None:
        done = prune_logs(db, server, now=now, stopping=stopping, skip=sorted(own))
    for pair, asked in sorted(own.items()):
        keep = kept_for(server, asked)
        if keep is None or stopping():
            continue
        theirs = prune_logs(
            db, keep, now=now, stopping=stopping, only=pair, setting="log_retention"
        )
        done.deploys, done.lines = done.deploys + theirs.deploys, done.lines + theirs.lines
        done.steps += theirs.steps
    swept = sweep_artifacts(db, settings)
    done.artifacts, done.builds, done.trees = swept.artifacts, swept.builds, swept.trees
    done.mirrors = swept.mirrors
    if done.anything:
        with db.transaction() as s:
            record(
                s,
                SYSTEM,
                "retention.prune",
                "server",
                retention_days=settings.log_retention.days if settings.log_retention else None,
                **asdict(done),
            )
        log.info("retention: %s", asdict(done))
    return done
