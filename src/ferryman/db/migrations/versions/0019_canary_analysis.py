"""canary analysis: one row per metric per interval of a gray release's analysis

Each measurement of a metric canary analysis (``strategy.analysis``): the interval, the
metric, the canary's and the baseline's values (NULL when there were none, or not finite),
the verdict (pass, fail, error) and why. Rows go with their deploy.

Revision ID: 0019
Revises: 0014
Create Date: 2026-11-30 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ferryman.db.models import UTCDateTime

revision = "0019"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analysis_measurements",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "deploy_id",
            sa.Integer(),
            sa.ForeignKey("deploys.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("interval_no", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("canary", sa.Double(), nullable=True),
        sa.Column("baseline", sa.Double(), nullable=True),
        sa.Column("verdict", sa.String(length=8), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False, server_default=""),
        sa.Column("measured_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_analysis_measurements_deploy", "analysis_measurements", ["deploy_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_analysis_measurements_deploy", table_name="analysis_measurements")
    op.drop_table("analysis_measurements")
