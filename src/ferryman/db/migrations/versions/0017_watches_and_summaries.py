"""post-deploy watches and scheduled summaries

One row per watch (``watch:`` of an environment): the deploy and release it watches, until
when (``deadline``), how often, what a failure does (notify or roll back), and the lease of
the worker checking it now — so a watch outlives any worker. One row per space that asks
for a daily or weekly summary (报表汇总): the channel, the period, and the last period sent
(the claim that keeps two workers from both sending it).

Revision ID: 0017
Revises: 0018
Create Date: 2026-11-30 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ferryman.db.models import UTCDateTime

revision = "0017"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deploy_watches",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "deploy_id",
            sa.Integer(),
            sa.ForeignKey("deploys.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("env", sa.String(length=64), nullable=False),
        sa.Column("release", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("on_failure", sa.String(length=16), nullable=False),
        sa.Column("interval", sa.Double(), nullable=False),
        sa.Column("deadline", UTCDateTime(), nullable=False),
        sa.Column("next_check_at", UTCDateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(length=200), nullable=False),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("rollback_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_deploy_watches_due", "deploy_watches", ["status", "next_check_at"])
    op.create_index("ix_deploy_watches_env", "deploy_watches", ["project_id", "env", "status"])
    op.create_table(
        "space_summaries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "space_id",
            sa.Integer(),
            sa.ForeignKey("spaces.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("last_period", sa.String(length=16), nullable=False),
        sa.Column("last_sent_at", UTCDateTime(), nullable=True),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("space_summaries")
    op.drop_index("ix_deploy_watches_env", table_name="deploy_watches")
    op.drop_index("ix_deploy_watches_due", table_name="deploy_watches")
    op.drop_table("deploy_watches")
