"""indexes at scale: what 100,000 deploys showed (docs/benchmarks.md, benchmarks/db_scale.py)

The dashboard's and /stats' figures of a period read the deploys of that period, not every
deploy: SQLite by ``(project_id, created_at)`` (it walks the space's projects), PostgreSQL by
``created_at``; the releases page reads an environment's complete and bad releases among
every removed one.

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-30 16:20:00
"""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_deploys_project_created", "deploys", ["project_id", "created_at"]),
    ("ix_deploys_created_at", "deploys", ["created_at"]),
    ("ix_releases_state", "releases", ["project_id", "env", "state"]),
    ("ix_releases_bad", "releases", ["project_id", "env", "bad"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
