"""Migration 0024 on every backend: notification deliveries and pull-mode tasks get a holder
token and a lease (``db/claims.py``); a delivery being sent when it runs keeps the old
five-minute take-back as its lease, a task a host was running can be fetched again by its
host (taken over), and the downgrade gives the columns back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from ferryman.db.models import UTCDateTime
from ferryman.db.session import MIGRATIONS, Database

WHEN = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _alembic(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def _table(name: str, *columns: sa.ColumnClause[Any]) -> sa.TableClause:
    return sa.table(name, sa.column("id", sa.Integer), *columns)


def _columns(db: Database, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(db.engine).get_columns(table)}


def test_in_flight_deliveries_and_tasks_get_leases_and_the_downgrade_removes_them(db_url: str):
    command.upgrade(_alembic(db_url), "0023")
    db = Database(db_url)
    spaces = sa.table("spaces", sa.column("id", sa.Integer), sa.column("name", sa.String))
    channels = _table(
        "notify_channels",
        *[sa.column(n, sa.String) for n in ("name", "kind", "settings", "language", "created_by")],
        sa.column("space_id", sa.Integer),
        *[sa.column(n, sa.JSON) for n in ("events", "projects", "envs")],
        sa.column("enabled", sa.Boolean),
        sa.column("created_at", UTCDateTime()),
    )
    deliveries = _table(
        "notify_deliveries",
        sa.column("channel_id", sa.Integer),
        sa.column("event", sa.String),
        sa.column("status", sa.String),
        sa.column("attempts", sa.Integer),
        *[sa.column(n, sa.JSON) for n in ("message", "history")],
        *[sa.column(n, UTCDateTime()) for n in ("next_attempt_at", "created_at")],
    )
    projects = _table(
        "projects",
        sa.column("space_id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("hook_secret", sa.String),
        sa.column("config", sa.JSON),
        *[sa.column(n, sa.DateTime) for n in ("created_at", "updated_at")],
    )
    deploys = _table(
        "deploys",
        sa.column("project_id", sa.Integer),
        *[
            sa.column(n, sa.String)
            for n in ("env", "kind", "ref", "commit", "release_name", "target_release")
        ],
        *[sa.column(n, sa.String) for n in ("status", "requested_by_name", "worker")],
        *[sa.column(n, sa.JSON) for n in ("config", "stages", "variables", "secret_names")],
        sa.column("created_at", sa.DateTime),
    )
    tasks = _table(
        "agent_tasks",
        sa.column("deploy_id", sa.Integer),
        sa.column("space_id", sa.Integer),
        *[sa.column(n, sa.String) for n in ("host", "action", "release", "previous")],
        *[sa.column(n, sa.String) for n in ("status", "phase", "detail")],
        *[sa.column(n, UTCDateTime()) for n in ("due_at", "fetched_at")],
    )
    with db.engine.begin() as conn:
        space = conn.execute(sa.select(spaces.c.id).where(spaces.c.name == "default")).scalar()
        conn.execute(
            channels.insert().values(
                id=1, space_id=space, name="ops", kind="webhook", settings="x", language="en",
                created_by="", events=[], projects=[], envs=[], enabled=True,
                created_at=WHEN,
            )
        )  # fmt: skip
        for delivery_id, status in ((1, "sending"), (2, "pending"), (3, "sent")):
            conn.execute(
                deliveries.insert().values(
                    id=delivery_id, channel_id=1, event="test", status=status, attempts=0,
                    message={}, history=[], next_attempt_at=WHEN, created_at=WHEN,
                )
            )  # fmt: skip
        conn.execute(
            projects.insert().values(
                id=1, space_id=space, name="site", hook_secret="", config={},
                created_at=datetime(2026, 1, 1), updated_at=datetime(2026, 1, 1),
            )
        )  # fmt: skip
        conn.execute(
            deploys.insert().values(
                id=1, project_id=1, env="production", kind="deploy", ref="v1", commit="",
                release_name="r1", target_release="", status="running",
                requested_by_name="alice", worker="", config={}, stages=[], variables={},
                secret_names=[], created_at=datetime(2026, 1, 1),
            )
        )  # fmt: skip
        for task_id, status in ((1, "running"), (2, "due")):
            conn.execute(
                tasks.insert().values(
                    id=task_id, deploy_id=1, space_id=space, host=f"10.0.0.{task_id}:22",
                    action="deploy", release="r1", previous="", status=status, phase="",
                    detail="", due_at=WHEN, fetched_at=WHEN if status == "running" else None,
                )
            )  # fmt: skip

    db.upgrade()
    lease = sa.column("lease_until", UTCDateTime())
    holder = sa.column("claimed_by", sa.String)
    with db.engine.connect() as conn:
        got = conn.execute(
            sa.select(deliveries.c.id, holder, lease)
            .select_from(deliveries)
            .order_by(deliveries.c.id)
        ).all()
        assert [tuple(r) for r in got] == [
            (1, "", WHEN + timedelta(minutes=5)),  # the old dispatcher's take-back
            (2, "", None),
            (3, "", None),
        ]
        got = conn.execute(
            sa.select(tasks.c.id, holder, lease).select_from(tasks).order_by(tasks.c.id)
        ).all()
        assert [tuple(r) for r in got] == [(1, "", WHEN), (2, "", None)]

    command.downgrade(_alembic(db_url), "0023")
    for table in ("notify_deliveries", "agent_tasks"):
        assert not {"claimed_by", "lease_until"} & _columns(db, table)
    with db.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar() == 3
        assert conn.execute(sa.select(sa.func.count()).select_from(tasks)).scalar() == 2
    command.upgrade(_alembic(db_url), "head")
    for table in ("notify_deliveries", "agent_tasks"):
        assert {"claimed_by", "lease_until"} <= _columns(db, table)
    db.dispose()
