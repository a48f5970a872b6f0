"""/stats aggregates in the database (``services/stats.py``): on SQLite, PostgreSQL and MariaDB
its figures equal the ones computed here, in plain Python, from the rows the test wrote — a
varied history with UTC day and ISO week boundaries to the microsecond, run times whose
fractions would round into the next second, groups whose size puts the 95th percentile on an
exact rank, environment names differing only in case, deploys that never ran, and deploys just
outside the period."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from ferryman.config.project import parse_project
from ferryman.db.models import Deploy, Project, Space, User
from ferryman.db.session import Database
from ferryman.services import projects, spaces, stats, users
from ferryman.services.audit import Actor
from tests.conftest import NET
from tests.helpers import ADMIN

SINCE = datetime(2026, 9, 1, tzinfo=UTC)  # a Tuesday
UNTIL = datetime(2026, 11, 16, tzinfo=UTC)  # a Monday
Row = dict[str, Any]


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database(db_url)
    db.upgrade()
    yield db
    db.dispose()


def _project(db: Database, space: str, name: str) -> int:
    config = {
        "project": name,
        "space": space,
        "repo": f"ssh://git@{NET}.96/{name}.git",  # never reached: nothing runs
        "environments": {
            env: {
                "hosts": [f"{NET}.90"],
                "webroot": f"/srv/www/{space}-{name}-{env}",
                "releases": f"/srv/releases/{space}-{name}-{env}",
            }
            for env in ("production", "staging")
        },
    }
    projects.apply_project(db, ADMIN, parse_project(config))
    with db.read() as s:
        found = s.scalar(
            select(Project.id)
            .join(Space, Space.id == Project.space_id)
            .where(Space.name == space, Project.name == name)
        )
    return int(found or 0)


def _history(db: Database) -> list[Row]:
    """Deploys in two spaces, written as rows; returns what was written."""
    spaces.create_space(db, ADMIN, "ops")
    owners = {
        _project(db, "default", "web"): ("default", "web"),
        _project(db, "default", "api"): ("default", "api"),
        _project(db, "ops", "db"): ("ops", "db"),
    }
    web, api, ops_db = owners
    rng = random.Random(22)
    rows: list[Row] = []

    def add(project_id: int, env: str, created: datetime, **more: Any) -> None:
        started = more.pop("started", created + timedelta(microseconds=rng.randint(0, 10**6)))
        seconds = more.pop("seconds", rng.randint(1, 600) + rng.randint(0, 999_999) / 10**6)
        status = more.pop("status", rng.choices(("success", "failed", "cancelled"), (8, 2, 1))[0])
        finished = more.pop("finished", None)
        if finished is None and status not in ("running", "queued"):
            finished = started + timedelta(seconds=seconds)
        rows.append(
            {
                "project_id": project_id,
                "space": owners[project_id][0],
                "project": owners[project_id][1],
                "env": env,
                "kind": more.pop("kind", rng.choices(("deploy", "rollback"), (6, 1))[0]),
                "status": status,
                "created_at": created,
                "started_at": None if status == "queued" else started,
                "finished_at": finished,
            }
        )
        assert not more

    # a spread over the period, in every group
    for _ in range(240):
        project_id = rng.choice((web, api, ops_db))
        env = rng.choice(("production", "staging"))
        moment = SINCE + timedelta(seconds=rng.randint(0, int((UNTIL - SINCE).total_seconds()) - 1))
        add(project_id, env, moment + timedelta(microseconds=rng.randint(0, 999_999)))
    # the edges of days and ISO weeks, and of the period (since counts, until does not)
    sunday_night = datetime(2026, 10, 4, 23, 59, 59, 999_999, tzinfo=UTC)
    for created in (
        SINCE,
        SINCE - timedelta(microseconds=1),
        UNTIL - timedelta(microseconds=1),
        UNTIL,
        sunday_night,
        sunday_night + timedelta(microseconds=1),
    ):
        add(web, "production", created, status="success")
    # fractions of a second that round up across a whole second, and a run over midnight
    fraction = datetime(2026, 10, 7, 10, 0, 0, 999_600, tzinfo=UTC)
    add(
        api,
        "staging",
        fraction,
        started=fraction,
        finished=fraction.replace(microsecond=0) + timedelta(seconds=5, microseconds=100),
        status="success",
    )
    add(api, "staging", sunday_night, started=sunday_night, seconds=0.000_002, status="failed")
    add(api, "staging", fraction, started=fraction, seconds=0, status="success")
    # groups sized 20 and 21 on one day (95 % falls on rank 19 and 20), 1 and 2 on others
    busy = datetime(2026, 10, 14, 9, tzinfo=UTC)
    for i in range(20):
        add(ops_db, "production", busy + timedelta(minutes=i), status="success")
    for i in range(21):
        add(ops_db, "staging", busy + timedelta(minutes=i), status="failed")
    add(ops_db, "production", datetime(2026, 10, 20, 1, tzinfo=UTC), status="success")
    for i in range(2):
        add(ops_db, "production", datetime(2026, 10, 21, 1, i, tzinfo=UTC), status="failed")
    # names differing only in case are two groups (MariaDB's collations would fold them)
    for env in ("Prod", "prod", "Prod"):
        add(web, env, datetime(2026, 10, 22, 12, tzinfo=UTC), status="success")
    # not run (queued), running, and cancelled after running: counted, never timed
    later = datetime(2026, 10, 23, 8, tzinfo=UTC)
    add(web, "staging", later, status="queued")
    add(web, "staging", later, status="running")
    add(web, "staging", later, status="cancelled")
    with db.transaction() as s:
        for row in rows:
            s.add(
                Deploy(
                    project_id=row["project_id"],
                    env=row["env"],
                    kind=row["kind"],
                    status=row["status"],
                    config={},
                    created_at=row["created_at"],
                    started_at=row["started_at"],
                    finished_at=row["finished_at"],
                )
            )
    return rows


def _expected(rows: list[Row], period: str, keep: Any) -> dict[str, Any]:
    """The figures, from the rows as written: plain loops, sorted lists."""

    def start(moment: datetime) -> str:
        day = moment.date()
        if period == "week":
            day -= timedelta(days=day.weekday())
        return day.isoformat()

    def figures(group: list[Row]) -> dict[str, Any]:
        times = sorted(
            (r["finished_at"] - r["started_at"]).total_seconds()
            for r in group
            if r["status"] in ("success", "failed") and r["started_at"] and r["finished_at"]
        )
        n = len(times)
        middle = (times[(n - 1) // 2] + times[n // 2]) / 2 if n else None
        rank = next((k for k in range(1, n + 1) if k * 100 >= 95 * n), 0)
        return {
            "deploys": sum(r["kind"] == "deploy" for r in group),
            "rollbacks": sum(r["kind"] == "rollback" for r in group),
            "successes": sum(r["status"] == "success" for r in group),
            "failures": sum(r["status"] == "failed" for r in group),
            "median_seconds": round(middle, 3) if middle is not None else None,
            "p95_seconds": round(times[rank - 1], 3) if n else None,
        }

    chosen = [r for r in rows if SINCE <= r["created_at"] < UNTIL and keep(r)]
    groups: dict[tuple[str, str, str, str], list[Row]] = {}
    for r in chosen:
        key = (start(r["created_at"]), r["space"], r["project"], r["env"])
        groups.setdefault(key, []).append(r)
    return {
        "series": [
            {"period": k[0], "space": k[1], "project": k[2], "env": k[3], **figures(v)}
            for k, v in sorted(groups.items())
        ],
        "total": figures(chosen),
    }


def test_stats_computed_by_the_database_equal_the_figures_of_the_rows(database):
    rows = _history(database)
    users.create_user(database, "ops-reader", "correct horse battery")
    spaces.set_member(database, ADMIN, "ops", "ops-reader", "reporter")
    with database.read() as s:
        reader_id = s.scalar(select(User.id).where(User.username == "ops-reader"))
    reader = Actor(id=reader_id, username="ops-reader")
    cases: list[tuple[Actor, dict[str, Any], Any]] = [
        (ADMIN, {}, lambda r: True),
        (ADMIN, {"space": "ops"}, lambda r: r["space"] == "ops"),
        (ADMIN, {"project": "default:web"}, lambda r: r["project"] == "web"),
        (ADMIN, {"env": "production"}, lambda r: r["env"] == "production"),
        (ADMIN, {"env": "Prod"}, lambda r: r["env"] == "Prod"),
        (reader, {}, lambda r: r["space"] == "ops"),  # the spaces they may read, only
    ]
    for period in ("day", "week"):
        for actor, query, keep in cases:
            got = stats.deploy_stats(
                database, actor, period=period, since=SINCE, until=UNTIL, **query
            )
            want = _expected(rows, period, keep)
            assert got["series"] == want["series"], (period, actor.username, query)
            assert got["total"] == want["total"], (period, actor.username, query)
            assert (got["period"], got["since"], got["until"]) == (
                period,
                SINCE.isoformat(),
                UNTIL.isoformat(),
            )


def test_stats_of_a_period_without_deploys_are_zeros_and_no_times(database):
    _history(database)
    empty = stats.deploy_stats(
        database, ADMIN, since=UNTIL + timedelta(days=1), until=UNTIL + timedelta(days=2)
    )
    assert empty["series"] == []
    assert empty["total"] == {
        "deploys": 0,
        "rollbacks": 0,
        "successes": 0,
        "failures": 0,
        "median_seconds": None,
        "p95_seconds": None,
    }
