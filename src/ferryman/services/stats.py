"""Deploy statistics per space, project and environment, per day or week: counts, successes,
failures, rollbacks, and the median and 95th percentile of run time.

The database does the work: one ``GROUP BY`` counts each group's deploys, and one query with
window functions (``ROW_NUMBER``/``COUNT`` over each group, and over all) picks the few run
times a median and a nearest-rank 95th percentile are made of — at most four rows a group,
whatever the group's size. The same SQL runs on SQLite, PostgreSQL and MariaDB; only the
bucketing of a timestamp into its UTC day or ISO week (Monday) and the run time in whole
microseconds are written per dialect (``_period`` and ``_micros``). Periods are UTC days: no
user's time zone applies here (the dashboard draws UTC days too).
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
    and_,
    case,
    cast,
    extract,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.orm import Session

from ferryman.db.models import Deploy, Project, Space, utcnow
from ferryman.db.session import Database
from ferryman.errors import ValidationError
from ferryman.services.audit import Actor
from ferryman.services.authz import visible_space_ids

PERIODS = ("day", "week")
Key = tuple[str, str, str, str]  # period start, space, project, environment


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
        scope = _scope(s, actor, space, project, env, since, until)
        dialect = s.get_bind().dialect.name
        groups = _counts(s, scope, dialect, period)
        picks, total_picks = _picked_durations(s, scope, dialect, period)
    total = _Figures()
    for figures in groups.values():
        total.deploys += figures.deploys
        total.rollbacks += figures.rollbacks
        total.successes += figures.successes
        total.failures += figures.failures
    series = [
        {
            "period": k[0],
            "space": k[1],
            "project": k[2],
            "env": k[3],
            **v.summary(picks.get(k, {})),
        }
        for k, v in sorted(groups.items())
    ]
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
    space: int | str | None,
    project: int | str | None,
    env: str | None,
    since: datetime,
    until: datetime,
) -> list[ColumnElement[bool]]:
    """The conditions choosing the deploys the figures count (authorised first)."""
    from ferryman.services.projects import find_project
    from ferryman.services.spaces import visible_space

    where: list[ColumnElement[bool]] = [Deploy.created_at >= since, Deploy.created_at < until]
    if project is not None:
        where.append(Project.id == find_project(s, actor, project, "stats.read").id)
    elif space is not None:
        where.append(Project.space_id == visible_space(s, actor, space, "stats.read").id)
    else:
        ids = visible_space_ids(s, actor)
        if ids is not None:
            where.append(Project.space_id.in_(ids))
    if env is not None:  # and byte for byte: MariaDB's collation finds "prod" for "Prod"
        dialect = s.get_bind().dialect.name
        where.append(Deploy.env == env)
        if dialect in ("mysql", "mariadb"):
            where.append(_exact(dialect, Deploy.env) == _exact(dialect, literal(env)))
    return where


def _period(dialect: str, period: str) -> ColumnElement[Any]:
    """The UTC day, or the Monday of the ISO week, a deploy was requested in (a date, or its
    ISO text on SQLite). Constants are literals: PostgreSQL matches a GROUP BY expression
    with the selected one only without bound parameters."""
    created = Deploy.created_at
    if dialect == "sqlite":  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff': the date is its start
        day = func.substr(created, 1, 10)  # (SQLite's date modifiers round to milliseconds:
        if period == "week":  # 23:59:59.9996 would move on to the next day and week)
            # back 6 days, then on to the next Monday (or stay on one)
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
        # whole seconds from the first 19 characters (strftime would round a fraction of
        # .9995 up into the next second), microseconds from the six after the dot
        def whole(column: Any) -> ColumnElement[Any]:
            return cast(func.strftime("%s", func.substr(column, 1, 19)), Integer)

        def fraction(column: Any) -> ColumnElement[Any]:
            return cast(func.substr(column, 21, 6), Integer)

        return (whole(finished) - whole(started)) * 1_000_000 + (
            fraction(finished) - fraction(started)
        )
    if dialect == "postgresql":  # EXTRACT gives an exact numeric (PostgreSQL 14 and later)
        epoch = extract("epoch", finished - started)
        return cast(func.round(epoch * 1_000_000), BigInteger)
    return func.timestampdiff(literal_column("MICROSECOND"), started, finished)


def _exact(dialect: str, column: Any) -> ColumnElement[Any]:
    """``column`` compared byte for byte: MariaDB's default collations would fold case
    (``App`` and ``app``) into one group where the other databases keep two."""
    if dialect in ("mysql", "mariadb"):
        return cast(column, LargeBinary)
    return column  # type: ignore[no-any-return]


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def _counts(
    s: Session, scope: list[ColumnElement[bool]], dialect: str, period: str
) -> dict[Key, _Figures]:
    """Each group's counts, in one GROUP BY."""
    bucket = _period(dialect, period)
    keys = (Space.name, Project.name, Deploy.env)

    def count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
        return func.sum(case((condition, 1), else_=0))

    stmt = (
        select(
            bucket,
            *(func.min(k) for k in keys),
            count(Deploy.kind == "deploy"),
            count(Deploy.kind == "rollback"),
            count(Deploy.status == "success"),
            count(Deploy.status == "failed"),
        )
        .select_from(Deploy)
        .join(Project, Project.id == Deploy.project_id)
        .join(Space, Space.id == Project.space_id)
        .where(*scope)
        .group_by(bucket, *(_exact(dialect, k) for k in keys))
    )
    groups: dict[Key, _Figures] = {}
    for start, space_name, project_name, env_name, *numbers in s.execute(stmt):
        figures = _Figures()
        figures.deploys, figures.rollbacks, figures.successes, figures.failures = (
            int(n or 0) for n in numbers
        )
        groups[(_text(start), str(space_name), str(project_name), str(env_name))] = figures
    return groups


Picks = dict[int, float]  # rank (1-based) → seconds, with the size under rank 0


def _picked_durations(
    s: Session, scope: list[ColumnElement[bool]], dialect: str, period: str
) -> tuple[dict[Key, Picks], Picks]:
    """The run times a median and a 95th percentile need, of each group and of all: ranked
    by window functions, and only the ranks that matter leave the database.

    Two queries, each ranking over one partition: MariaDB 10.11 numbers rows wrongly when
    one query mixes ``COUNT(*) OVER (PARTITION BY …)`` with ``ROW_NUMBER() OVER (ORDER BY
    …)`` over another partition (the ranks follow the other window's sort)."""
    bucket = _period(dialect, period)
    names = [Space.name, Project.name, Deploy.env]
    group = [bucket, *(_exact(dialect, k) for k in names)]
    picks: dict[Key, Picks] = {}
    for start, space_name, project_name, env_name, us, rank, size in _ranked(
        s, scope, dialect, [bucket, *names], group
    ):
        mine = picks.setdefault(
            (_text(start), str(space_name), str(project_name), str(env_name)), {}
        )
        mine[0], mine[int(rank)] = int(size), int(us) / 1_000_000  # as total_seconds() gives it
    total: Picks = {}
    for us, rank, size in _ranked(s, scope, dialect, [], []):
        total[0], total[int(rank)] = int(size), int(us) / 1_000_000
    return picks, total


def _ranked(
    s: Session,
    scope: list[ColumnElement[bool]],
    dialect: str,
    shown: Sequence[Any],
    partition: Sequence[ColumnElement[Any]],
) -> Any:
    """Rows of ``shown`` columns, run time in microseconds, rank and size of the partition:
    the run times of ranks that a median or the 95th percentile is made of."""
    micros = _micros(dialect)
    window = list(partition) or None
    ranked = (
        select(
            *(c.label(f"k{i}") for i, c in enumerate(shown)),
            micros.label("micros"),
            func.row_number().over(partition_by=window, order_by=micros).label("rank"),
            func.count().over(partition_by=window).label("size"),
        )
        .select_from(Deploy)
        .join(Project, Project.id == Deploy.project_id)
        .join(Space, Space.id == Project.space_id)
        .where(
            *scope,
            Deploy.status.in_(("success", "failed")),
            Deploy.started_at.is_not(None),
            Deploy.finished_at.is_not(None),
        )
        .subquery()
    )
    rank, size = ranked.c["rank"], ranked.c["size"]
    # the middle one or two (2·rank is size, size+1 or size+2) and the nearest rank of 95 %
    # (ceil(0.95·size): 100·(rank-1) < 95·size <= 100·rank), in integers only
    needed = or_(
        (2 * rank).in_((size, size + 1, size + 2)),
        and_(100 * (rank - 1) < 95 * size, 95 * size <= 100 * rank),
    )
    return s.execute(select(*ranked.c).where(needed))


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
