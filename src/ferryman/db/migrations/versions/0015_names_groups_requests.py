"""display names, deleted projects, release requests, user groups

- ``spaces.display_name``, ``projects.display_name``: a name in any script (``兼容-测试-1.0``)
  beside the ASCII slug used in paths and URLs; empty: the slug is shown.
- ``projects.deleted_at``: a deleted project keeps its row (its deploys, tickets and audit
  rows still point at it); its ``name`` is set free (``NAME~ID``) so the slug can be reused.
- ``tickets.request``: the release request (``POST /api/v1/project``) a ticket was made from:
  its dependencies, commands and time window as asked; NULL for other tickets.
- ``user_groups``, ``user_group_members``, ``space_groups``: Walle 2's 用户组 — a group is
  added to a space with a role, and its members hold that role there.

Revision ID: 0015
Revises: 0016
Create Date: 2026-11-30 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ferryman.db.models import UTCDateTime

revision = "0015"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("spaces", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("display_name", sa.String(length=100), nullable=False, server_default="")
        )
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("display_name", sa.String(length=100), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("deleted_at", UTCDateTime(), nullable=True))
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request", sa.JSON(), nullable=True))
    op.create_table(
        "user_groups",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False, server_default=""),
        sa.Column("description", sa.String(length=500), nullable=False, server_default=""),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("name", name="uq_user_groups_name"),
    )
    op.create_table(
        "user_group_members",
        sa.Column(
            "group_id",
            sa.Integer(),
            sa.ForeignKey("user_groups.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
    )
    op.create_index("ix_user_group_members_user_id", "user_group_members", ["user_id"])
    op.create_table(
        "space_groups",
        sa.Column(
            "space_id",
            sa.Integer(),
            sa.ForeignKey("spaces.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "group_id",
            sa.Integer(),
            sa.ForeignKey("user_groups.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_space_groups_group_id", "space_groups", ["group_id"])


def downgrade() -> None:
    op.drop_index("ix_space_groups_group_id", table_name="space_groups")
    op.drop_table("space_groups")
    op.drop_index("ix_user_group_members_user_id", table_name="user_group_members")
    op.drop_table("user_group_members")
    op.drop_table("user_groups")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("request")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("deleted_at")
        batch_op.drop_column("display_name")
    with op.batch_alter_table("spaces", schema=None) as batch_op:
        batch_op.drop_column("display_name")
