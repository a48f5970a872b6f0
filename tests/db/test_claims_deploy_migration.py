"""Migration 0025 on every backend: deploys get a holder token (``claimed_by``) beside their
lease, as every queue claimed through ``db/claims.py`` has. Deploys in flight keep no token (the
old code's claims are written by the old rules, and taken over once their lease runs out); a
running deploy with no lease gets the one the old take-over counted from its start; the
downgrade gives the column back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import command

from ferryman.db.models import UTCDateTime
from ferryman.db.session import Database
from tests.db.test_claim_columns_migration import _alembic, _columns, _table

WHEN = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_deploys_in_flight_keep_no_token_and_an_unleased_run_gets_its_lease(db_url: str):
    command.upgrade(_alembic(db_url), "0024")
    db = Database(db_url)
    spaces = sa.table("spaces", sa.column("id", sa.Integer), sa.column("name", sa.String))
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
        *[sa.column(n, UTCDateTime()) for n in ("created_at", "started_at", "lease_expires_at")],
    )
    rows = [  # id, status, worker, started_at, lease_expires_at
        (1, "running", "old:1:a", WHEN, WHEN + timedelta(seconds=60)),
        (2, "running", "old:1:a", WHEN, None),  # no lease: counted from its start
        (3, "queued", "", None, None),
        (4, "success", "old:1:a", WHEN, WHEN),
    ]
    with db.engine.begin() as conn:
        space = conn.execute(sa.select(spaces.c.id).where(spaces.c.name == "default")).scalar()
        conn.execute(
            projects.insert().values(
                id=1, space_id=space, name="site", hook_secret="", config={},
                created_at=datetime(2026, 1, 1), updated_at=datetime(2026, 1, 1),
            )
        )  # fmt: skip
        for deploy_id, status, worker, started, lease in rows:
            conn.execute(
                deploys.insert().values(
                    id=deploy_id, project_id=1, env=f"env{deploy_id}", kind="deploy", ref="v1",
                    commit="", release_name="r1", target_release="", status=status,
                    requested_by_name="alice", worker=worker, config={}, stages=[],
                    variables={}, secret_names=[], created_at=WHEN - timedelta(minutes=1),
                    started_at=started, lease_expires_at=lease,
                )
            )  # fmt: skip

    db.upgrade()
    holder = sa.column("claimed_by", sa.String)
    with db.engine.connect() as conn:
        got = conn.execute(
            sa.select(deploys.c.id, holder, deploys.c.worker, deploys.c.lease_expires_at)
            .select_from(deploys)
            .order_by(deploys.c.id)
        ).all()
    assert [tuple(r) for r in got] == [
        (1, "", "old:1:a", WHEN + timedelta(seconds=60)),
        (2, "", "old:1:a", WHEN + timedelta(seconds=60)),  # the old take-over's lease
        (3, "", "", None),
        (4, "", "old:1:a", WHEN),
    ]

    command.downgrade(_alembic(db_url), "0024")
    assert "claimed_by" not in _columns(db, "deploys")
    with db.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(deploys)).scalar() == 4
    command.upgrade(_alembic(db_url), "head")
    assert "claimed_by" in _columns(db, "deploys")
    db.dispose()
