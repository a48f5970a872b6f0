"""claims of notification deliveries and pull-mode tasks: a holder token and a lease

Deliveries and pull-mode tasks are claimed like post-deploy watches (``db/claims.py``): a
claim writes its holder token (the fence: only that claim writes the row's outcome) and its
lease, in the database's clock. Rows in flight when this runs are carried over:

- a delivery being sent (``sending``) was claimed at ``next_attempt_at`` and taken back after
  five minutes by the old code: its lease ends then, and a worker takes it over after that;
- a task a host is running (``running``) could be fetched again by its host at any time: its
  lease has already ended, so its host's next fetch takes it over (with a token: the run
  that fetched it before can no longer report).

Neither gets a holder token: what the old code handed out is written by the old rules.

Revision ID: 0024
Revises: 0023
Create Date: 2026-11-30 19:10:00
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from alembic import op

from ferryman.db.models import UTCDateTime

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

TABLES = ("notify_deliveries", "agent_tasks")
STUCK = timedelta(minutes=5)  # the old dispatcher's take-back of a "sending" delivery


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("claimed_by", sa.String(length=200), nullable=False, server_default="")
            )
            batch_op.add_column(sa.Column("lease_until", UTCDateTime(), nullable=True))
    conn = op.get_bind()
    deliveries = sa.table(
        "notify_deliveries",
        sa.column("id", sa.Integer),
        sa.column("status", sa.String),
        sa.column("next_attempt_at", UTCDateTime()),
        sa.column("lease_until", UTCDateTime()),
    )
    sending = conn.execute(
        sa.select(deliveries.c.id, deliveries.c.next_attempt_at).where(
            deliveries.c.status == "sending"
        )
    ).all()
    for delivery_id, claimed_at in sending:
        conn.execute(
            deliveries.update()
            .where(deliveries.c.id == delivery_id)
            .values(lease_until=claimed_at + STUCK)
        )
    tasks = sa.table(
        "agent_tasks",
        sa.column("status", sa.String),
        sa.column("fetched_at", UTCDateTime()),
        sa.column("lease_until", UTCDateTime()),
    )
    conn.execute(
        tasks.update().where(tasks.c.status == "running").values(lease_until=tasks.c.fetched_at)
    )


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("lease_until")
            batch_op.drop_column("claimed_by")
