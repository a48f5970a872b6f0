"""Schema migrations keep what is there: projects made before spaces land in ``default``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from ferryman.db.session import MIGRATIONS, Database


def _alembic(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def test_projects_and_tokens_from_before_spaces_survive_the_upgrade(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(_alembic(url), "0001")
    db = Database(url)
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO projects (id, name, config, created_at, updated_at) "
                "VALUES (1, 'website', '{}', '2026-01-01', '2026-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO users (id, username, password_hash, is_superuser, is_active, "
                "created_at) VALUES (1, 'alice', 'x', 1, 1, '2026-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO api_tokens (user_id, name, token_hash, created_at) "
                "VALUES (1, 'cli', 'abc', '2026-01-01')"
            )
        )
    db.upgrade()
    with db.engine.connect() as conn:
        space = conn.execute(text("SELECT id FROM spaces WHERE name = 'default'")).scalar_one()
        assert conn.execute(text("SELECT space_id FROM projects")).scalar_one() == space
        envs = conn.execute(
            text("SELECT name, requires_approval FROM environments ORDER BY id")
        ).all()
        assert [(n, bool(a)) for n, a in envs] == [
            ("dev", False),
            ("test", False),
            ("staging", False),
            ("production", True),
        ]
        scopes = conn.execute(text("SELECT scopes FROM api_tokens")).scalar_one()
        assert "write" in scopes
    db.dispose()


def test_literal_hosts_become_servers_of_their_space_and_join_their_environments(
    db_url: str,
):
    import json

    import sqlalchemy as sa

    command.upgrade(_alembic(db_url), "0012")
    db = Database(db_url)
    config = {
        "project": "site",
        "repo": "ssh://git@h/x.git",
        "environments": {
            "production": {
                "hosts": ["10.0.0.13", "deploy@10.0.0.14:2222"],
                "webroot": "/w",
                "releases": "/r",
                "servers": ["known"],
            },
            "dev": {"hosts": ["10.0.0.13"], "webroot": "/w", "releases": "/r"},
        },
    }
    servers = sa.table(
        "servers",
        *[sa.column(n, sa.String) for n in ("name", "address", "user", "description")],
        sa.column("space_id", sa.Integer),
        sa.column("port", sa.Integer),
        sa.column("labels", sa.JSON),
    )
    projects = sa.table(
        "projects",
        *[sa.column(n, sa.String) for n in ("name", "hook_secret")],
        sa.column("space_id", sa.Integer),
        sa.column("config", sa.JSON),
        sa.column("created_at", sa.DateTime),
        sa.column("updated_at", sa.DateTime),
    )
    spaces = sa.table("spaces", sa.column("id", sa.Integer), sa.column("name", sa.String))
    with db.engine.begin() as conn:
        space = conn.execute(sa.select(spaces.c.id).where(spaces.c.name == "default")).scalar()
        conn.execute(
            servers.insert().values(
                space_id=space,
                name="known",
                address="10.0.0.20",
                port=22,
                user="",
                labels=[],
                description="",
            )
        )
        conn.execute(
            projects.insert().values(
                space_id=space,
                name="site",
                config=config,
                created_at=datetime(2026, 1, 1),
                updated_at=datetime(2026, 1, 1),
                hook_secret="",
            )
        )
    db.upgrade()
    with db.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT name, address, port, environments FROM servers ORDER BY id")
        ).all()
        assert [(n, a, p) for n, a, p, _e in rows] == [
            ("known", "10.0.0.20", 22),
            ("10.0.0.13", "10.0.0.13", 22),
            ("10.0.0.14-2222", "10.0.0.14", 2222),
        ]
        members = {n: json.loads(e) if isinstance(e, str) else e for n, _a, _p, e in rows}
        assert members == {
            "known": ["production"],
            "10.0.0.13": ["dev", "production"],
            "10.0.0.14-2222": ["production"],
        }
        default_key = conn.execute(
            text("SELECT uses_server_key FROM spaces WHERE name = 'default'")
        ).scalar_one()
        assert bool(default_key)
    db.dispose()
