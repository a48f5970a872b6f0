"""Throwaway databases on the real PostgreSQL and MariaDB servers (and SQLite files), for the
tests and benchmarks that must run on every backend Ferryman supports.

``FERRYMAN_TEST_POSTGRES`` / ``FERRYMAN_TEST_MARIADB`` name the servers (defaults: the local
ones, ``postgres`` and ``root`` with trust / an empty password).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from ferryman.db.session import Database
from ferryman.errors import InternalError

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
    engine = None
    try:
        engine = create_engine(SERVERS[backend], connect_args=CONNECT)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any driver or connection error means: not here
        return f"{backend} is not reachable at {SERVERS[backend]}: {type(exc).__name__}: {exc}"
    finally:
        if engine is not None:
            engine.dispose()  # its connection closed now, reachable or not
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


def backend_of(url: str) -> str:
    name = make_url(url).get_backend_name()
    return "mariadb" if name in ("mysql", "mariadb") else name


class Templates:
    """Migrated databases to copy. The tests make hundreds of databases and each would run
    every migration; instead the first one of each backend is migrated for real (``migrate``,
    Alembic), kept as a template, and every later empty database becomes a copy of it: a file
    copy on SQLite, ``CREATE DATABASE … TEMPLATE`` on PostgreSQL, the template's tables and
    rows re-created on MariaDB (which has no templates). One per process: each pytest-xdist
    worker has its own. ``close`` drops them."""

    def __init__(self, scratch: Path, migrate: Callable[[Database], None]) -> None:
        self.scratch = scratch
        self.migrate = migrate
        self._urls: dict[str, str] = {}  # backend -> template URL

    def template(self, backend: str) -> str:
        if backend not in self._urls:
            url = create(backend, self.scratch)
            db = Database(url)
            try:
                self.migrate(db)
            finally:
                db.dispose()
            self._urls[backend] = url
        return self._urls[backend]

    def clone_into(self, db: Database) -> bool:
        """Make ``db`` a copy of its backend's template when it holds no table at all; False
        (nothing changed) when it holds some, or when it cannot be replaced right now (another
        connection is open to it on PostgreSQL)."""
        backend = backend_of(db.url)
        target = make_url(db.url).database
        if backend == "sqlite" and (not target or target == ":memory:" or "file:" in target):
            return False  # no file to copy onto
        if backend != "sqlite" and not _on_shared_server(db.url, backend):
            return False  # a private server (a test's own PostgreSQL): its template is not there
        if inspect(db.engine).get_table_names():
            return False
        template = self.template(backend)
        db.engine.dispose()
        if backend == "sqlite":
            source = make_url(template).database
            if not (target and source):  # both are files: checked above, and a template's is
                raise InternalError(f"SQLite template {template!r} onto {db.url!r}: not files")
            shutil.copyfile(source, target)  # keeps the target's 0600 mode
            for suffix in ("-wal", "-shm"):
                Path(target + suffix).unlink(missing_ok=True)
            return True
        if backend == "postgresql":
            return _postgres_copy(make_url(template).database, target)
        _mariadb_copy(db, make_url(template).database)
        return True

    def close(self) -> None:
        for url in self._urls.values():
            drop(url)
        self._urls.clear()


def _on_shared_server(url: str, backend: str) -> bool:
    """Whether ``url`` is a database of the shared server the templates live on."""
    mine, shared = make_url(url), make_url(SERVERS[backend])
    return (mine.host, mine.port or shared.port) == (shared.host, shared.port)


def _postgres_copy(template: str | None, name: str | None) -> bool:
    admin = create_engine(SERVERS["postgresql"], isolation_level="AUTOCOMMIT", connect_args=CONNECT)
    try:
        with admin.connect() as conn:
            try:
                conn.execute(text(f'DROP DATABASE "{name}"'))
            except OperationalError:  # someone else is connected: migrate it instead
                return False
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    finally:
        admin.dispose()
    return True


def _mariadb_copy(db: Database, template: str | None) -> None:
    with db.engine.connect() as conn:
        tables = [
            row[0]
            for row in conn.execute(
                text(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = :t AND table_type = 'BASE TABLE'"
                ),
                {"t": template},
            )
        ]
        conn.execute(text("SET FOREIGN_KEY_CHECKS = 0"))
        for table in tables:
            ddl = conn.execute(text(f"SHOW CREATE TABLE `{template}`.`{table}`")).one()[1]
            conn.execute(text(ddl))  # names its foreign keys' tables unqualified: this database
            copy = f"INSERT INTO `{table}` SELECT * FROM `{template}`.`{table}`"  # noqa: S608
            conn.execute(text(copy))
        conn.execute(text("SET FOREIGN_KEY_CHECKS = 1"))
        conn.commit()
