"""Engine and sessions for SQLite (default), PostgreSQL and MariaDB; schema via Alembic."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, make_url
from sqlalchemy.engine import CursorResult, Engine, Result
from sqlalchemy.orm import Session, sessionmaker

from ferryman.errors import InternalError
from ferryman.secretbox import SecretBox

MIGRATIONS = Path(__file__).parent / "migrations"
CONNECT_TIMEOUT = 10  # seconds to reach PostgreSQL or MariaDB


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _private_sqlite_file(url: str) -> None:
    """The SQLite file (and its ``-wal``/``-shm``, which SQLite creates with the database
    file's mode) readable by the server's user only: it holds password hashes, token hashes
    and sealed secrets. Created 0600 before SQLite opens it; an older, wider file narrowed."""
    name = make_url(url).database
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    path = Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for each in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            if each.stat().st_mode & 0o077:
                each.chmod(0o600)
        except FileNotFoundError:
            pass


def rowcount(result: Result[Any]) -> int:
    """Rows matched by an UPDATE/DELETE (SQLAlchemy types ``execute`` as a plain Result)."""
    if not isinstance(result, CursorResult):
        raise InternalError(f"rows matched, asked of a statement that returns rows: {result!r}")
    return int(result.rowcount)


class Database:
    """One engine and its session factory; ``transaction()`` is the unit of work."""

    def __init__(self, url: str, box: SecretBox | None = None) -> None:
        self.url = url
        self._box = box
        self.directory: Any = None  # services.directory.Directory when LDAP is configured
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith(("postgresql", "mysql", "mariadb")):
            # a database host that drops packets must not hang a request or a deploy's write
            # for the kernel's TCP timeout: it is an outage, retried like a refused connection
            kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            if ":memory:" not in url and url.startswith("sqlite:///"):
                _private_sqlite_file(url)
        self.engine: Engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self.sessions.begin() as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self.sessions() as session:
            yield session

    def upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision (creates it on first start)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with self.engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")

    @property
    def box(self) -> SecretBox:
        """The key that seals secret values (set by ``bootstrap.open_database``)."""
        if self._box is None:
            from ferryman.errors import ConfigError

            raise ConfigError("this database was opened without the server's secret key")
        return self._box

    @box.setter
    def box(self, box: SecretBox) -> None:
        self._box = box

    def dispose(self) -> None:
        self.engine.dispose()
