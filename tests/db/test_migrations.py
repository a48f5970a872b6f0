"""Schema migrations keep what is there: projects made before spaces land in ``default``."""

from __future__ import annotations

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
