"""release migrations: what each deploy's ``migrations:`` command listed

One row per deploy or rollback whose environment has a ``migrations:`` command: the release it
switched to, the database migrations listed then (``[[version, reversible], …]``), or why the
listing failed. Rollbacks read them to refuse crossing an irreversible migration.

Revision ID: 0016
Revises: 0019
Create Date: 2026-11-30 12:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ferryman.db.models import UTCDateTime

revision = "0016"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "release_migrations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("env", sa.String(length=64), nullable=False),
        sa.Column(
            "deploy_id",
            sa.Integer(),
            sa.ForeignKey("deploys.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("release", sa.String(length=255), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=False, server_default=""),
        sa.Column("applied", sa.JSON(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("truncated", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("listed_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_release_migrations_env", "release_migrations", ["project_id", "env", "id"])


def downgrade() -> None:
    op.drop_index("ix_release_migrations_env", table_name="release_migrations")
    op.drop_table("release_migrations")
