"""one active deploy per project environment, enforced by a unique key

``deploys.active_key`` is ``"<project_id>:<env>"`` while a deploy is queued, running or
paused and NULL otherwise, under a plain UNIQUE index (MariaDB has no partial indexes; NULLs
never collide on any of the three). Existing active deploys get their key; where an install
already holds two active deploys of one environment (the race this closes), the oldest keeps
it and the others stay NULL: they run as before, and the environment is free again once the
oldest ends.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

ACTIVE = ("queued", "running", "paused")


def upgrade() -> None:
    with op.batch_alter_table("deploys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("active_key", sa.String(length=100), nullable=True))
    deploys = sa.table(
        "deploys",
        sa.column("id", sa.Integer()),
        sa.column("project_id", sa.Integer()),
        sa.column("env", sa.String()),
        sa.column("status", sa.String()),
        sa.column("active_key", sa.String()),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(deploys.c.id, deploys.c.project_id, deploys.c.env)
        .where(deploys.c.status.in_(ACTIVE))
        .order_by(deploys.c.id)
    ).all()
    held: set[str] = set()
    for deploy_id, project_id, env in rows:
        key = f"{project_id}:{env}"
        if key in held:
            continue  # a duplicate from before this revision: the oldest holds the env
        held.add(key)
        bind.execute(sa.update(deploys).where(deploys.c.id == deploy_id).values(active_key=key))
    op.create_index("ux_deploys_active_key", "deploys", ["active_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_deploys_active_key", table_name="deploys")
    with op.batch_alter_table("deploys", schema=None) as batch_op:
        batch_op.drop_column("active_key")
