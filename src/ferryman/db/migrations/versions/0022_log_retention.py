"""log retention: when the pruning job removed a deploy's log lines and command records

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-30 16:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ferryman.db.models import UTCDateTime

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deploys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("logs_pruned_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deploys", schema=None) as batch_op:
        batch_op.drop_column("logs_pruned_at")
