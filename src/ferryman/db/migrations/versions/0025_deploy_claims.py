"""deploys claimed like every other queue: a holder token beside the lease

The deploy queue moves onto ``db/claims.py``: a claim writes a holder token (``claimed_by``,
the worker's name and a nonce, new for every claim) with its lease (``lease_expires_at``, as
before), and every write of the run — its heartbeat, its records, its outcome — is fenced by
that token instead of the worker's name (``worker`` stays: who runs or ran it, as shown).
Deploys in flight when this runs are carried over:

- a running deploy keeps no token: what the old code handed out is written by the old rules,
  and once its lease runs out the next claim takes it over (with a token);
- a running deploy with no lease at all (the old take-over counted a lease from its start)
  gets the one the old code gave it: its start (or its creation) plus the default lease.

Revision ID: 0025
Revises: 0024
Create Date: 2026-11-30 22:20:00
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from alembic import op

from ferryman.db.models import UTCDateTime

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

LEASE = timedelta(seconds=60)  # FERRYMAN_LOCK_LEASE's default


def upgrade() -> None:
    with op.batch_alter_table("deploys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("claimed_by", sa.String(length=200), nullable=False, server_default="")
        )
    deploys = sa.table(
        "deploys",
        sa.column("id", sa.Integer),
        sa.column("status", sa.String),
        sa.column("created_at", UTCDateTime()),
        sa.column("started_at", UTCDateTime()),
        sa.column("lease_expires_at", UTCDateTime()),
    )
    conn = op.get_bind()
    unleased = conn.execute(
        sa.select(deploys.c.id, deploys.c.started_at, deploys.c.created_at).where(
            deploys.c.status == "running", deploys.c.lease_expires_at.is_(None)
        )
    ).all()
    for deploy_id, started_at, created_at in unleased:
        conn.execute(
            deploys.update()
            .where(deploys.c.id == deploy_id)
            .values(lease_expires_at=(started_at or created_at) + LEASE)
        )


def downgrade() -> None:
    with op.batch_alter_table("deploys", schema=None) as batch_op:
        batch_op.drop_column("claimed_by")
