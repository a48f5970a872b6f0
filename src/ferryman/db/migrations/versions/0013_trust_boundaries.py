"""trust boundaries: keys per space, pinned host keys, servers in environments, approval
digests, fair workers

Existing installs move over: the server's key stays the default space's; every literal host of
a project becomes a server of its space; every server joins the environments whose projects
target it; queued rollbacks are claimed first. Approvals made before this revision have no
digest: they stay valid while the project is unchanged since the approval.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 02:40:00
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

from ferryman.domain import inventory, validate
from ferryman.errors import ValidationError

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("spaces", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("uses_server_key", sa.Boolean(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("max_running", sa.Integer(), server_default="2", nullable=False)
        )
        batch_op.add_column(
            sa.Column("max_task_timeout", sa.Float(), server_default="3600", nullable=False)
        )
        batch_op.add_column(
            sa.Column("allow_local_repos", sa.Boolean(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("repo_known_hosts", sa.Text(), server_default="", nullable=False)
        )
    with op.batch_alter_table("servers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("host_key", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("environments", sa.JSON(), nullable=True))
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("approved_digest", sa.String(length=64), server_default="", nullable=False)
        )
    with op.batch_alter_table("deploys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("priority", sa.Integer(), server_default="100", nullable=False)
        )
    _move_data()


def _flag() -> sa.ColumnClause[bool]:
    return sa.column("uses_server_key", sa.Boolean)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _move_data() -> None:
    bind = op.get_bind()
    # Declared, not reflected: MariaDB reflects JSON columns as LONGTEXT.
    spaces = sa.table("spaces", sa.column("id", sa.Integer), sa.column("name", sa.String), _flag())
    servers = sa.table(
        "servers",
        sa.column("id", sa.Integer),
        sa.column("space_id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("address", sa.String),
        sa.column("port", sa.Integer),
        sa.column("user", sa.String),
        sa.column("labels", sa.JSON),
        sa.column("description", sa.String),
        sa.column("host_key", sa.Text),
        sa.column("environments", sa.JSON),
    )
    projects = sa.table(
        "projects",
        sa.column("space_id", sa.Integer),
        sa.column("config", sa.JSON),
    )
    deploys = sa.table(
        "deploys",
        sa.column("kind", sa.String),
        sa.column("status", sa.String),
        sa.column("priority", sa.Integer),
    )

    first = bind.scalar(sa.select(spaces.c.id).where(spaces.c.name == "default"))
    if first is None:
        first = bind.scalar(sa.select(sa.func.min(spaces.c.id)))
    if first is not None:
        bind.execute(spaces.update().where(spaces.c.id == first).values(uses_server_key=True))
    bind.execute(
        deploys.update()
        .where(deploys.c.kind == "rollback", deploys.c.status == "queued")
        .values(priority=10)
    )

    for (space_id,) in bind.execute(sa.select(spaces.c.id)).all():
        rows = bind.execute(sa.select(servers).where(servers.c.space_id == space_id)).all()
        refs = [
            inventory.ServerRef(
                r.name, r.address, r.port, r.user or "", tuple(_json(r.labels) or [])
            )
            for r in rows
        ]
        members: dict[str, set[str]] = {r.name: set() for r in rows}
        configs = bind.execute(
            sa.select(projects.c.config).where(projects.c.space_id == space_id)
        ).all()
        for (raw,) in configs:
            config = _json(raw) or {}
            for env_name, env in (config.get("environments") or {}).items():
                for host in env.get("hosts", []) or []:
                    try:
                        spec = validate.host(host)
                    except ValidationError:  # never valid: nothing to register
                        continue
                    if inventory.match_literal(spec, refs) is None:
                        name = inventory.server_name_for(spec, [r.name for r in refs])
                        bind.execute(
                            servers.insert().values(
                                space_id=space_id,
                                name=name,
                                address=spec.address,
                                port=spec.port,
                                user="",
                                labels=[],
                                description="registered from a project's hosts (0013)",
                                host_key="",
                                environments=[],
                            )
                        )
                        refs.append(inventory.ServerRef(name, spec.address, spec.port, "", ()))
                        members[name] = set()
                for ref in inventory.targeted(env, refs):
                    members[ref.name].add(env_name)
        for name, envs in members.items():
            bind.execute(
                servers.update()
                .where(servers.c.space_id == space_id, servers.c.name == name)
                .values(environments=sorted(envs))
            )


def downgrade() -> None:
    with op.batch_alter_table("deploys", schema=None) as batch_op:
        batch_op.drop_column("priority")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("approved_digest")
    with op.batch_alter_table("servers", schema=None) as batch_op:
        batch_op.drop_column("environments")
        batch_op.drop_column("host_key")
    with op.batch_alter_table("spaces", schema=None) as batch_op:
        batch_op.drop_column("repo_known_hosts")
        batch_op.drop_column("allow_local_repos")
        batch_op.drop_column("max_task_timeout")
        batch_op.drop_column("max_running")
        batch_op.drop_column("uses_server_key")
