"""shared paths of existing environments stay where they are

The default shared dir moved from ``<releases>/../shared`` (one for every project beside it)
to ``<releases>/../shared/<project>/<env>``. An environment that already links shared paths
(``shared:``) without naming a ``shared_dir`` gets the old default written into its stored
configuration, and so do the deploys still queued, running or paused: its uploads and logs
stay where its releases link them. Environments without shared paths are left as they are
(they never wrote a shared dir). Nothing is undone on downgrade: the written value is the
one the older code computed.

Revision ID: 0020
Revises: 0015
Create Date: 2026-11-30 12:40:00
"""

from __future__ import annotations

import posixpath
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0015"
branch_labels = None
depends_on = None

ACTIVE = ("queued", "running", "paused")


def pinned(config: Any) -> dict[str, Any] | None:
    """``config`` with the old default shared dir written where it was relied on; None when
    nothing changes."""
    if not isinstance(config, dict) or not isinstance(config.get("environments"), dict):
        return None
    changed = False
    envs = {}
    for name, env in config["environments"].items():
        if (
            isinstance(env, dict)
            and env.get("shared")
            and not env.get("shared_dir")
            and isinstance(env.get("releases"), str)
        ):
            releases = env["releases"].rstrip("/")
            env = {**env, "shared_dir": posixpath.join(posixpath.dirname(releases), "shared")}
            changed = True
        envs[name] = env
    return {**config, "environments": envs} if changed else None


def upgrade() -> None:
    bind = op.get_bind()
    projects = sa.table("projects", sa.column("id", sa.Integer()), sa.column("config", sa.JSON()))
    deploys = sa.table(
        "deploys",
        sa.column("id", sa.Integer()),
        sa.column("status", sa.String()),
        sa.column("config", sa.JSON()),
    )
    for row_id, config in bind.execute(sa.select(projects.c.id, projects.c.config)).all():
        new = pinned(config)
        if new is not None:
            bind.execute(sa.update(projects).where(projects.c.id == row_id).values(config=new))
    rows = bind.execute(
        sa.select(deploys.c.id, deploys.c.config).where(deploys.c.status.in_(ACTIVE))
    ).all()
    for row_id, config in rows:
        new = pinned(config)
        if new is not None:
            bind.execute(sa.update(deploys).where(deploys.c.id == row_id).values(config=new))


def downgrade() -> None:
    pass
