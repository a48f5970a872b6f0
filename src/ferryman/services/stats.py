"""Deploy statistics per space, project and environment, per day or week: counts, successes,
failures, rollbacks, and the median and 95th percentile of run time.

The database does the reading and the arithmetic: one ``GROUP BY`` counts each group's
deploys, and one narrow query gives each timed deploy's group and its run time in exact
microseconds; only the ranks of the medians and 95th percentiles are picked here, from lists
of integers (``_picked_durations`` says why not window functions). Nothing reads whole deploy
rows or parses a timestamp in Python. The same queries run on SQLite, PostgreSQL and MariaDB;
the bucketing of a timestamp into its UTC day or ISO week (Monday) and the run time are
written per dialect (``_period`` and ``_micros``), and environment names compare byte for
byte on MariaDB too. Groups are by project id: a space's project names are unique. Periods
are UTC days: no user's time zone applies (the dashboard draws UTC days too).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    LargeBinary,
    case,
    cast,
    extract,
    func,
    literal,
    literal_column,
    select,
)
from sqlalchemy.orm import Session

from ferryman.db.models import Deploy, Project, Space, utcnow
from ferryman.db.session import Database
from ferryman.domain.statuses import DeployStatus
from ferryman.errors import ValidationError
from ferryman.services.audit import Actor
from ferryman.services.authz import visible_space_ids

PERIODS = ("day", "week")


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile (``fraction`` in 0..1) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def period_start(ts: datetime, period: str) -> str:
    day = ts.date()
    if period == "week":
        day = day - timedelta(days=day.weekday())  # ISO weeks start on Monday
    return day.isoformat()


def deploy_stats(
    db: Database,
    actor: Actor,
    *,
    space: int | str | None = None,
    project: int | str | None = None,
    env: str | None = None,
    period: str = "day",
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    if period not in PERIODS:
        raise ValidationError(f"period: one of {', '.join(PERIODS)}")
    until = until or utcnow()
    since = since or until - timedelta(days=30)
    with db.read() as s:
        dialect = s.get_bind().dialect.name
        scope = _scope(s, actor, dialect, space, project, env, since, until)
        groups = _counts(s, scope, dialect, period)
        picks, total_picks = _picked_durations(s, scope, dialect, period)
        names = _names(s, {project_id for _start, project_id, _env in groups})
    total = _Figures()
    series = []
    for (start, project_id, env_name), figures in groups.items():
        total.deploys += figures.deploys
        total.rollbacks += figures.rollbacks
        total.successes += figures.successes
        total.failures += figures.failures
        space_name, project_name = names[project_id]
        mine = picks.get((start, project_id, env_name), {})
        series.append(
            {
                "period": start,
                "space": space_name,
                "project": project_name,
                "env": env_name,
                **figures.summary(mine),
            }
        )
    series.sort(key=lambda row: (row["period"], row["space"], row["project"], row["env"]))
    return {
        "period": period,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "series": series,
        "total": total.summary(total_picks),
    }


def _scope(
    s: Session,
    actor: Actor,
    dialect: str,
    space: int | str | None,
    project: int | str | None,
    env: str | None,
    since: datetime,
    until: datetime,
) -> list[ColumnElement[bool]]:
    """The conditions choosing the deploys the figures count (authorised first), on the
    deploys alone: no join in the queries that read them."""
    from ferryman.services.projects import find_project
    from ferryman.services.spaces import visible_space

    where: list[ColumnElement[bool]] = [Deploy.created_at >= since, Deploy.created_at < until]
    if project is not None:
        where.append(Deploy.project_id == find_project(s, actor, project, "stats.read").id)
    elif space is not None:
        chosen = visible_space(s, actor, space, "stats.read").id
        where.append(Deploy.project_id.in_(select(Project.id).where(Project.space_id == chosen)))
    else:
        ids = visible_space_ids(s, actor)
        if ids is not None:
            where.append(Deploy.project_id.in_(select(Project.id).where(Project.space_id.in_(ids))))
    if env is not None:  # and byte for byte: MariaDB's collation finds "prod" for "Prod"
        where.append(Deploy.env == env)
        if dialect in ("mysql", "mariadb"):
            where.append(_exact(dialect, Deploy.env) == _exact(dialect, literal(env)))
    return where


def _names(s: Session, project_ids: set[int]) -> dict[int, tuple[str, str]]:
    """Each project's space and name. A project's id stands for its name in the groups: a
    space's project names are unique (deleted ones are renamed ``NAME~ID``)."""
    if not project_ids:
        return {}
    rows = s.execute(
        select(Project.id, Space.name, Project.name)
        .join(Space, Space.id == Project.space_id)
        .where(Project.id.in_(sorted(project_ids)))
    )
    return {int(i): (str(space), str(name)) for i, space, name in rows}


def _period(dialect: str, period: str) -> ColumnElement[Any]:
    """The UTC day, or the Monday of the ISO week, a deploy was requested in (a date, or its
    ISO text on SQLite). Constants are literals: PostgreSQL matches a GROUP BY expression
    with the selected one only without bound parameters."""
    created = Deploy.created_at
    if dialect == "sqlite":  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff': the date is its start
        day = func.substr(created, literal_column("1"), literal_column("10"))
        if period == "week":  # (SQLite's date modifiers round to milliseconds: 23:59:59.9996
            # would move on to the next day and week) back 6 days, on to the next Monday
            return func.date(day, literal_column("'-6 days'"), literal_column("'weekday 1'"))
        return day
    if dialect == "postgresql":  # timestamp without time zone, in UTC
        if period == "week":
            return func.date(func.date_trunc(literal_column("'week'"), created))
        return func.date(created)
    if period == "week":  # MariaDB/MySQL: WEEKDAY is 0 on Monday
        return func.subdate(func.date(created), func.weekday(created))
    return func.date(created)


def _micros(dialect: str) -> ColumnElement[Any]:
    """A deploy's run time (``finished_at - started_at``) in whole microseconds, exactly."""
    started, finished = Deploy.started_at, Deploy.finished_at
    if dialect == "sqlite":
        # whole seconds from the first 19 characters (julianday of a fraction rounds it to
        # milliseconds), microseconds from the six after the dot
        def seconds(column: Any) -> ColumnElement[Any]:
            return func.julianday(func.substr(column, 1, 19))

        def fraction(column: Any) -> ColumnElement[Any]:
            return cast(func.substr(column, 21, 6), Integer)

        whole = cast(func.round((seconds(finished) - seconds(started)) * 86400), Integer)
        return whole * 1_000_000 + (fraction(finished) - fraction(started))
    if dialect == "postgresql":  # EXTRACT gives an exact numeric (PostgreSQL 14 and later)
        epoch = extract("epoch", finished - started)
        return cast(func.round(epoch * 1_000_000), BigInteger)
    return func.timestampdiff(literal_column("MICROSECOND"), started, finished)


def _exact(dialect: str, column: Any) -> ColumnElement[Any]:
    """``column`` compared byte for byte: MariaDB's default collations would fold case
    (``Prod`` and ``prod``) into one group where the other databases keep two."""
    if dialect in ("mysql", "mariadb"):
        return cast(column, LargeBinary)
    return column  # type: ignore[no-any-return]


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


Key = tuple[str, int, str]  # period start, project id, environment


def _counts(
    s: Session, scope: list[ColumnElement[bool]], dialect: str, period: str
) -> dict[Key, _Figures]:
    """Each group's counts, in one GROUP BY."""
    bucket = _period(dialect, period)

    def count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
        return func.sum(case((condition, 1), else_=0))

    stmt = (
        select(
            bucket,
            Deploy.project_id,
            func.min(Deploy.env),
            count(Deploy.kind == "deploy"),
            count(Deploy.kind == "rollback"),
            count(Deploy.status == DeployStatus.SUCCESS),
            count(Deploy.status == DeployStatus.FAILED),
        )
        .where(*scope)
        .group_by(bucket, Deploy.project_id, _exact(dialect, Deploy.env))
    )
    groups: dict[Key, _Figures] = {}
    for start, project_id, env_name, *numbers in s.execute(stmt):
        figures = _Figures()
        figures.deploys, figures.rollbacks, figures.successes, figures.failures = (
            int(n or 0) for n in numbers
        )
        groups[(_text(start), int(project_id), str(env_name))] = figures
    return groups


Picks = dict[int, float]  # rank (1-based) → seconds, with the size under rank 0


def _picked_durations(
    s: Session, scope: list[ColumnElement[bool]], dialect: str, period: str
) -> tuple[dict[Key, Picks], Picks]:
    """The run times a median and a 95th percentile need, of each group and of all.

    The database computes each run time (exact microseconds, one narrow row a timed deploy)
    and the ranks are picked here from lists sorted here. Window functions ranking in the
    database (``ROW_NUMBER``/``COUNT`` over each group and over all) gave the same figures
    and were slower at 100,000 deploys (30 days, 8,000 run times): 101 against 39 ms of CPU
    on SQLite, 196 against 70 ms of wall time on PostgreSQL (docs/benchmarks.md); and
    MariaDB 10.11 numbered rows wrongly when one query mixed windows over two partitions."""
    stmt = select(_period(dialect, period), Deploy.project_id, Deploy.env, _micros(dialect)).where(
        *scope,
        # through a function: SQLite would walk its index on status (every success and
        # failure ever, 98,000 of 100,000) instead of the period's (ix_deploys_created_at)
        func.coalesce(Deploy.status, "").in_((DeployStatus.SUCCESS, DeployStatus.FAILED)),
        Deploy.started_at.is_not(None),
        Deploy.finished_at.is_not(None),
    )
    runs: dict[tuple[Any, int, str], list[int]] = {}
    for start, project_id, env_name, micros in s.execute(stmt):
        runs.setdefault((start, project_id, env_name), []).append(int(micros))
    picks: dict[Key, Picks] = {}
    every: list[int] = []
    for (start, project_id, env_name), times in runs.items():
        times.sort()
        every.extend(times)
        picks[(_text(start), int(project_id), str(env_name))] = _pick(times)
    every.sort()
    return picks, _pick(every)


def _pick(ordered: list[int]) -> Picks:
    """The ranks of a median and a nearest-rank 95th percentile in ``ordered`` (sorted
    microseconds), in seconds as ``timedelta.total_seconds()`` gives them."""
    size = len(ordered)
    ranks = {(size + 1) // 2, size // 2 + 1, -(-95 * size // 100)} if size else set()
    return {0: size} | {rank: ordered[rank - 1] / 1_000_000 for rank in ranks}


class _Figures:
    """The counts of one group of deploys, from the database."""

    __slots__ = ("deploys", "failures", "rollbacks", "successes")

    def __init__(self) -> None:
        self.deploys = self.rollbacks = self.successes = self.failures = 0

    def summary(self, picks: Picks) -> dict[str, Any]:
        """The counts, with the median and 95th percentile of the run times ``picks`` holds."""
        size = int(picks.get(0, 0))
        p50 = p95 = None
        if size:
            middle = size // 2
            p50 = picks[middle + 1] if size % 2 else (picks[middle] + picks[middle + 1]) / 2
            p95 = picks[-(-95 * size // 100)]  # ceil(0.95·size), as the query picked it
        return {
            "deploys": self.deploys,
            "rollbacks": self.rollbacks,
            "successes": self.successes,
            "failures": self.failures,
            "median_seconds": round(p50, 3) if p50 is not None else None,
            "p95_seconds": round(p95, 3) if p95 is not None else None,
        }
