"""Migration 0020: an environment that already links shared paths keeps its shared dir
(the old default, now written down), on every backend; new ones get the per-project one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from ferryman.db.session import MIGRATIONS, Database


def _alembic(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def _env(**extra: Any) -> dict[str, Any]:
    return {"hosts": ["127.0.110.9"], "webroot": "/srv/www/a", "releases": "/srv/rel/a", **extra}


def _config(env: dict[str, Any]) -> dict[str, Any]:
    return {"project": "a", "repo": "file:///srv/git/a.git", "environments": {"production": env}}


PROJECTS = sa.table(
    "projects",
    sa.column("id", sa.Integer),
    sa.column("space_id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("config", sa.JSON),
    sa.column("created_at", sa.DateTime),
    sa.column("updated_at", sa.DateTime),
)
DEPLOYS = sa.table(
    "deploys",
    sa.column("id", sa.Integer),
    sa.column("project_id", sa.Integer),
    *[
        sa.column(n, sa.String)
        for n in (
            "env",
            "kind",
            "ref",
            "commit",
            "release_name",
            "target_release",
            "status",
            "requested_by_name",
            "worker",
        )
    ],
    *[sa.column(n, sa.JSON) for n in ("config", "stages", "variables", "secret_names")],
    sa.column("created_at", sa.DateTime),
)


def test_environments_with_shared_paths_keep_their_shared_dir_after_the_upgrade(db_url: str):
    command.upgrade(_alembic(db_url), "0015")
    db = Database(db_url)
    when = datetime(2026, 1, 1)
    spaces = sa.table("spaces", sa.column("id", sa.Integer), sa.column("name", sa.String))
    with db.engine.begin() as conn:
        space = conn.execute(sa.select(spaces.c.id).where(spaces.c.name == "default")).scalar()
        configs = {
            "linked": _config(_env(shared=["uploads"])),
            "named": _config(_env(shared=["uploads"], shared_dir="/data/a")),
            "plain": _config(_env()),
        }
        for index, (name, config) in enumerate(configs.items(), start=1):
            conn.execute(
                PROJECTS.insert().values(
                    id=index,
                    space_id=space,
                    name=name,
                    config=config,
                    created_at=when,
                    updated_at=when,
                )
            )
        for index, status in ((1, "queued"), (2, "success")):
            conn.execute(
                DEPLOYS.insert().values(
                    id=index,
                    project_id=1,
                    env="production",
                    kind="deploy",
                    ref="main",
                    commit="",
                    release_name="",
                    target_release="",
                    status=status,
                    requested_by_name="alice",
                    worker="",
                    config=configs["linked"],
                    stages=[],
                    variables={},
                    secret_names=[],
                    created_at=when,
                )
            )
    db.upgrade()
    with db.engine.connect() as conn:
        stored = dict(conn.execute(sa.select(PROJECTS.c.name, PROJECTS.c.config)).all())
        deploys = dict(conn.execute(sa.select(DEPLOYS.c.status, DEPLOYS.c.config)).all())
    db.dispose()

    def shared_dir(config: dict[str, Any]) -> str | None:
        found: str | None = config["environments"]["production"].get("shared_dir")
        return found

    assert shared_dir(stored["linked"]) == "/srv/rel/shared"  # where its uploads are
    assert shared_dir(stored["named"]) == "/data/a"
    assert shared_dir(stored["plain"]) is None  # never linked anything: the new default
    assert shared_dir(deploys["queued"]) == "/srv/rel/shared"
    assert shared_dir(deploys["success"]) is None  # history is left as it was
