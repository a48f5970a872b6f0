"""Throwaway databases on the real PostgreSQL and MariaDB servers (and SQLite files), for the
tests and benchmarks that must run on every backend Ferryman supports.

``FERRYMAN_TEST_POSTGRES`` / ``FERRYMAN_TEST_MARIADB`` name the servers (defaults: the local
ones, ``postgres`` and ``root`` with trust / an empty password).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

BACKENDS = ("sqlite", "postgresql", "mariadb")
CONNECT = {"connect_timeout": 5}
SERVERS = {
    "postgresql": os.environ.get(
        "FERRYMAN_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    ),
    "mariadb": os.environ.get("FERRYMAN_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/"),
}


def unavailable(backend: str) -> str | None:
    """Why ``backend`` cannot be used here, or None."""
    if backend == "sqlite":
        return None
    try:
        engine = create_engine(SERVERS[backend], connect_args=CONNECT)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any driver or connection error means: not here
        return f"{backend} is not reachable at {SERVERS[backend]}: {type(exc).__name__}: {exc}"
    return None


def create(backend: str, scratch: Path) -> str:
    """A new, empty database; returns its SQLAlchemy URL."""
    if backend == "sqlite":
        return f"sqlite:///{scratch / f'ferryman-{uuid.uuid4().hex[:8]}.db'}"
    name = f"ferryman_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(SERVERS[backend], isolation_level="AUTOCOMMIT", connect_args=CONNECT)
    with admin.connect() as conn:
        if backend == "mariadb":
            conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
        else:
            conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    url = make_url(SERVERS[backend]).set(database=name)
    if backend == "mariadb":
        url = url.update_query_dict({"charset": "utf8mb4"})
    return url.render_as_string(hide_password=False)


def drop(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            for suffix in ("", "-wal", "-shm"):
                Path(parsed.database + suffix).unlink(missing_ok=True)
        return
    backend = "mariadb" if parsed.get_backend_name() in ("mysql", "mariadb") else "postgresql"
    admin = create_engine(SERVERS[backend], isolation_level="AUTOCOMMIT", connect_args=CONNECT)
    with admin.connect() as conn:
        if backend == "postgresql":
            conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
        else:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{parsed.database}`"))
    admin.dispose()
