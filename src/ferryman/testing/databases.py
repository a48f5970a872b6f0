"""Throwaway databases on the real PostgreSQL and MariaDB servers (and SQLite files), for the
tests and benchmarks that must run on every backend Ferryman supports.

``FERRYMAN_TEST_POSTGRES`` / ``FERRYMAN_TEST_MARIADB`` name the servers (defaults: the local
ones, ``postgres`` and ``root`` with trust / an empty password).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from ferryman.db.session import Database
from ferryman.errors import InternalError

BACKENDS = ("sqlite", "postgresql", "mariadb")
CONNECT = {"connect_timeout": 5}


def _plain_on_loopback(url: str) -> str:
    """A MariaDB URL on a loopback address that names no TLS option, with TLS off.

    PyMySQL (1.1.1 on) offers TLS to every server unless told not to, and builds a new TLS
    context for each connection — loading the system's certificates, ~21 ms of CPU — even
    when the server offers no TLS (the local one does not). The tests open thousands of
    connections: ~10 s of CPU in the inner loop, spent on nothing. A loopback connection gains
    nothing from TLS; a server elsewhere, or a URL that names any ``ssl`` option, is left as
    it is."""
    parsed = make_url(url)
    host = parsed.host or ""
    loopback = host.startswith("127.") or host in ("localhost", "::1")
    if not loopback or any(key.startswith("ssl") for key in parsed.query):
        return url
    plain = parsed.update_query_dict({"ssl_disabled": "true"})
    return plain.render_as_string(hide_password=False)


SERVERS = {
    "postgresql": os.environ.get(
        "FERRYMAN_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    ),
    "mariadb": _plain_on_loopback(
        os.environ.get("FERRYMAN_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/")
    ),
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
    return _url_of(backend, name)


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
    """Migrated databases to copy, and databases to use again. The tests make hundreds of
    databases and each would run every migration; instead the first one of each backend is
    migrated for real (``migrate``, Alembic) and kept as a template, and every later empty
    database becomes a copy of it: a file copy on SQLite; on PostgreSQL and MariaDB, a
    database used before and cleaned back to the template's state (``recycle``) is moved in
    when there is one, else a copy is made (``CREATE DATABASE … TEMPLATE`` on PostgreSQL, the
    template's tables and rows re-created on MariaDB, which has no templates).

    The pool of used databases is this object's alone, and one is made per process (each
    pytest-xdist worker has its own): a database is never handed to two tests at once. Its
    names are random like every test database's. ``close`` drops the templates and the pool."""

    def __init__(self, scratch: Path, migrate: Callable[[Database], None]) -> None:
        self.scratch = scratch
        self.migrate = migrate
        self._urls: dict[str, str] = {}  # backend -> template URL
        self._states: dict[str, _State] = {}  # backend -> the template's state
        self._empty: dict[str, list[str]] = {"postgresql": [], "mariadb": []}  # no table
        self._ready: dict[str, list[str]] = {"postgresql": [], "mariadb": []}  # as the template

    def template(self, backend: str) -> str:
        if backend not in self._urls:
            url = create(backend, self.scratch)
            db = Database(url)
            try:
                self.migrate(db)
            finally:
                db.dispose()
            self._urls[backend] = url  # close drops it, whatever happens next
            if backend != "sqlite":
                self._states[backend] = _State.of(url)
        return self._urls[backend]

    def create(self, backend: str, scratch: Path) -> str:
        """``create``: a new, empty database — one used before and left empty when there is."""
        if self._empty.get(backend):
            return _url_of(backend, self._empty[backend].pop())
        return create(backend, scratch)

    def recycle(self, url: str) -> None:
        """``drop``, unless ``url`` can be used again: a database of the shared server that
        nothing is connected to any more and that is either empty or holds exactly the
        template's schema (every table, column, index, constraint, sequence, trigger and view
        alike). Such a one gets the template's rows back (every other row deleted, sequences
        and auto-increment counters set back to the template's: the ids a test sees are a
        fresh copy's) and waits in the pool."""
        backend = backend_of(url)
        name = make_url(url).database
        if backend == "sqlite" or not name or not _on_shared_server(url, backend):
            drop(url)
            return
        try:
            kept = self._clean(backend, name)
        except Exception:  # whatever state it was left in: it is dropped like any other
            kept = None
        if kept is None:
            drop(url)
        else:
            kept.append(name)

    def _clean(self, backend: str, name: str) -> list[str] | None:
        """The pool ``name`` joins once cleaned, or None: drop it."""
        engine = create_engine(_url_of(backend, name), connect_args=CONNECT)
        try:
            with engine.connect() as conn:
                if _connections(conn, backend, name) > 1:  # ours is one
                    return None
                if not _tables(conn, backend, name):
                    return self._empty[backend]
                state = self._states.get(backend)
                if state is None or _schema(conn, backend, name) != state.schema:
                    return None
                state.restore(conn, backend, name)
                conn.commit()
                # what a restored database holds is checked, not assumed: the template's rows
                if _rows(conn, backend, state.tables) != state.rows:
                    return None
        finally:
            engine.dispose()
        return self._ready[backend]

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
        if target and self._ready[backend]:
            ready = self._ready[backend].pop()
            if _move_into(backend, ready, target):
                self._empty[backend].append(ready)  # what was moved out of left it empty
                return True
            self._ready[backend].append(ready)
        if backend == "postgresql":
            return _postgres_copy(make_url(template).database, target)
        _mariadb_copy(db, make_url(template).database)
        return True

    def close(self) -> None:
        for backend, names in (*self._empty.items(), *self._ready.items()):
            for name in names:
                drop(_url_of(backend, name))
            names.clear()
        for url in self._urls.values():
            drop(url)
        self._urls.clear()


def _url_of(backend: str, name: str) -> str:
    url = make_url(SERVERS[backend]).set(database=name)
    if backend == "mariadb":
        url = url.update_query_dict({"charset": "utf8mb4"})
    return url.render_as_string(hide_password=False)


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


def _quote(backend: str, name: str) -> str:
    return f"`{name}`" if backend == "mariadb" else f'"{name}"'


def _connections(conn: Connection, backend: str, name: str) -> int:
    if backend == "postgresql":
        sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = :n"
    else:
        sql = "SELECT count(*) FROM information_schema.processlist WHERE db = :n"
    return int(conn.execute(text(sql), {"n": name}).scalar_one())


def _tables(conn: Connection, backend: str, name: str) -> list[str]:
    schema = "public" if backend == "postgresql" else name
    rows = conn.execute(
        text(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = :s AND table_type = 'BASE TABLE' ORDER BY table_name"
        ),
        {"s": schema},
    )
    return [str(row[0]) for row in rows]


# Everything a database's schema is made of, as rows of text: tables and their columns,
# indexes, constraints and foreign keys (a MariaDB key that names another database is a
# difference), sequences, views, triggers, routines and types.
_POSTGRES_SCHEMA = """
SELECT 'column', table_name::text, column_name::text, data_type::text, is_nullable::text,
       coalesce(column_default, ''), coalesce(character_maximum_length::text, ''),
       ordinal_position::text
  FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL SELECT 'index', tablename::text, indexname::text, indexdef, '', '', '', ''
  FROM pg_indexes WHERE schemaname = 'public'
UNION ALL SELECT 'constraint', conrelid::regclass::text, conname::text,
       pg_get_constraintdef(oid), '', '', '', ''
  FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL SELECT 'relation', relname::text, relkind::text, '', '', '', '', ''
  FROM pg_class WHERE relnamespace = 'public'::regnamespace
UNION ALL SELECT 'trigger', tgrelid::regclass::text, tgname::text, '', '', '', '', ''
  FROM pg_trigger WHERE NOT tgisinternal
UNION ALL SELECT 'routine', proname::text, '', '', '', '', '', ''
  FROM pg_proc WHERE pronamespace = 'public'::regnamespace
UNION ALL SELECT 'type', typname::text, typtype::text, '', '', '', '', ''
  FROM pg_type WHERE typnamespace = 'public'::regnamespace
UNION ALL SELECT 'schema', nspname::text, '', '', '', '', '', ''
  FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
UNION ALL SELECT 'extension', extname::text, '', '', '', '', '', '' FROM pg_extension
"""
_MARIADB_SCHEMA = """
SELECT 'column', table_name, column_name, column_type, is_nullable,
       coalesce(column_default, ''), concat(extra, ' ', coalesce(collation_name, '')),
       ordinal_position
  FROM information_schema.columns WHERE table_schema = :s
UNION ALL SELECT 'index', table_name, index_name, column_name, non_unique, seq_in_index,
       coalesce(sub_part, ''), ''
  FROM information_schema.statistics WHERE table_schema = :s
UNION ALL SELECT 'key', table_name, constraint_name, column_name,
       coalesce(referenced_table_name, ''), coalesce(referenced_column_name, ''),
       coalesce(referenced_table_schema = table_schema, ''), ''
  FROM information_schema.key_column_usage WHERE table_schema = :s
UNION ALL SELECT 'reference', table_name, constraint_name, update_rule, delete_rule,
       referenced_table_name, '', ''
  FROM information_schema.referential_constraints WHERE constraint_schema = :s
UNION ALL SELECT 'check', table_name, constraint_name, check_clause, '', '', '', ''
  FROM information_schema.check_constraints WHERE constraint_schema = :s
UNION ALL SELECT 'table', table_name, table_type, coalesce(engine, ''),
       coalesce(table_collation, ''), '', '', ''
  FROM information_schema.tables WHERE table_schema = :s
UNION ALL SELECT 'trigger', trigger_name, event_object_table, '', '', '', '', ''
  FROM information_schema.triggers WHERE trigger_schema = :s
UNION ALL SELECT 'routine', routine_name, routine_type, '', '', '', '', ''
  FROM information_schema.routines WHERE routine_schema = :s
"""


def _schema(conn: Connection, backend: str, name: str) -> list[tuple[str, ...]]:
    sql = _POSTGRES_SCHEMA if backend == "postgresql" else _MARIADB_SCHEMA
    rows = conn.execute(text(sql), {} if backend == "postgresql" else {"s": name})
    return sorted(tuple(str(value) for value in row) for row in rows)


def _rows(conn: Connection, backend: str, tables: list[str]) -> dict[str, Any]:
    """What the rows of a database are: each table's number of rows, every row of the
    tables that hold any (as text: PostgreSQL's JSON of the row, MariaDB's values), and the
    counters the next ids come from (sequences, auto-increment)."""
    q = functools.partial(_quote, backend)
    state: dict[str, Any] = {"counts": sorted(_rows_counts(conn, backend, tables))}
    for table, n in state["counts"]:
        if n:
            if backend == "postgresql":
                sql = f"SELECT row_to_json(r)::text FROM {q(table)} AS r"  # noqa: S608
                state[table] = sorted(str(row[0]) for row in conn.execute(text(sql)))
            else:
                sql = f"SELECT * FROM {q(table)}"  # noqa: S608
                state[table] = sorted(repr(tuple(row)) for row in conn.execute(text(sql)))
    if backend == "postgresql":
        counters = conn.execute(
            text(
                "SELECT sequencename, last_value, start_value FROM pg_sequences "
                "WHERE schemaname = 'public'"
            )
        )
    else:
        counters = conn.execute(
            text(
                "SELECT table_name, auto_increment, 1 FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND auto_increment IS NOT NULL"
            )
        )
    state["counters"] = sorted(
        ((str(n), None if v is None else int(v), int(s)) for n, v, s in counters),
        key=lambda counter: counter[0],
    )
    return state


_MANY = 500  # rows: a table with more is truncated, not deleted from row by row


class _State:
    """A template's schema and rows, and how to put a used database back to them."""

    def __init__(self, name: str, tables: list[str], schema: list[tuple[str, ...]]) -> None:
        self.name = name
        self.tables = tables
        self.schema = schema
        self.rows: dict[str, Any] = {}

    @classmethod
    def of(cls, url: str) -> _State:
        backend, name = backend_of(url), str(make_url(url).database)
        engine = create_engine(url, connect_args=CONNECT)
        try:
            with engine.connect() as conn:
                state = cls(name, _tables(conn, backend, name), _schema(conn, backend, name))
                state.rows = _rows(conn, backend, state.tables)
        finally:
            engine.dispose()
        return state

    def restore(self, conn: Connection, backend: str, name: str) -> None:
        """Every row deleted, the template's put back, its counters set again (one
        transaction on PostgreSQL; the caller commits)."""
        q = functools.partial(_quote, backend)
        counts = _rows_counts(conn, backend, self.tables)
        used = [t for t, n in counts if 0 < n < _MANY]  # deleted row by row: cheap
        many = [t for t, n in counts if n >= _MANY]  # emptied whole: a new file, not per row
        if backend == "postgresql":
            if many:  # with the tables that refer to them (CASCADE): all are emptied anyway
                conn.execute(text(f"TRUNCATE {', '.join(map(q, many))} CASCADE"))
            conn.execute(text("SET LOCAL session_replication_role = replica"))  # no key checks
            for table in used:
                conn.execute(text(f"DELETE FROM {q(table)}"))  # noqa: S608
            for table, n in self.rows["counts"]:
                for row in self.rows[table] if n else ():
                    conn.execute(
                        text(
                            f"INSERT INTO {q(table)} SELECT * FROM "  # noqa: S608
                            f"json_populate_record(NULL::{q(table)}, CAST(:row AS json))"
                        ),
                        {"row": row},  # the row's JSON
                    )
            counters = [  # never used: its start, and the next nextval() returns it
                f"setval('{q(seq)}', {start if last is None else last}, {last is not None})"
                for seq, last, start in self.rows["counters"]
            ]
            if counters:
                conn.execute(text("SELECT " + ", ".join(counters)))
            return
        conn.execute(text("SET FOREIGN_KEY_CHECKS = 0"))
        try:
            for table in many:
                conn.execute(text(f"TRUNCATE {q(table)}"))
            for table in used:
                conn.execute(text(f"DELETE FROM {q(table)}"))  # noqa: S608
            for table, n in self.rows["counts"]:
                if n:
                    conn.execute(
                        text(f"INSERT INTO {q(table)} SELECT * FROM {q(self.name)}.{q(table)}")  # noqa: S608
                    )
            conn.commit()
            now: dict[str, int] = dict(
                conn.execute(
                    text(
                        "SELECT table_name, auto_increment FROM information_schema.tables "
                        "WHERE table_schema = DATABASE() AND auto_increment IS NOT NULL"
                    )
                ).all()
            )
            for table, value, _ in self.rows["counters"]:
                if now.get(table) != value:
                    conn.execute(text(f"ALTER TABLE {q(table)} AUTO_INCREMENT = {value}"))
        finally:
            conn.execute(text("SET FOREIGN_KEY_CHECKS = 1"))


def _rows_counts(conn: Connection, backend: str, tables: list[str]) -> list[tuple[str, int]]:
    q = functools.partial(_quote, backend)
    counts = conn.execute(
        text(" UNION ALL ".join(f"SELECT '{t}', count(*) FROM {q(t)}" for t in tables))  # noqa: S608
    ).all()
    return [(str(t), int(n)) for t, n in counts]


def _move_into(backend: str, ready: str, target: str) -> bool:
    """Give ``target`` (empty) what ``ready`` holds, leaving ``ready`` empty: renames, no copy.
    False, nothing changed, when something is connected to either."""
    admin = create_engine(SERVERS[backend], isolation_level="AUTOCOMMIT", connect_args=CONNECT)
    try:
        with admin.connect() as conn:
            if backend == "postgresql":
                swap = f"{target}_swap"
                try:
                    conn.execute(text(f'ALTER DATABASE "{target}" RENAME TO "{swap}"'))
                except OperationalError:
                    return False
                try:
                    conn.execute(text(f'ALTER DATABASE "{ready}" RENAME TO "{target}"'))
                except OperationalError:
                    conn.execute(text(f'ALTER DATABASE "{swap}" RENAME TO "{target}"'))
                    return False
                conn.execute(text(f'ALTER DATABASE "{swap}" RENAME TO "{ready}"'))
                return True
            tables = _tables(conn, backend, ready)
            moves = ", ".join(f"`{ready}`.`{t}` TO `{target}`.`{t}`" for t in tables)
            try:
                conn.execute(text(f"RENAME TABLE {moves}"))  # one statement: all or none
            except OperationalError:
                return False
            return True
    finally:
        admin.dispose()


class SqliteState:
    """A SQLite database's state, kept once and put back on demand: a module's tests can share
    what took long to build (a world of users, spaces and projects; an app with its routes
    built) and still each start from the same rows. Both copies go through SQLite's backup
    API, page by page under the database's own locks: consistent while the database's engine
    stays open (its pooled connections see the rows put back), whatever its write-ahead log
    holds. On any other backend it keeps nothing and ``restore`` does nothing."""

    def __init__(self, url: str, keep: Path) -> None:
        name = make_url(url).database if backend_of(url) == "sqlite" else None
        self.file = Path(name) if name and name != ":memory:" and "file:" not in name else None
        self.keep = keep
        if self.file is not None:
            _sqlite_copy(self.file, self.keep)

    def restore(self) -> None:
        if self.file is not None:
            _sqlite_copy(self.keep, self.file)


def _sqlite_copy(source: Path, target: Path) -> None:
    with (
        contextlib.closing(sqlite3.connect(source, timeout=30)) as src,
        contextlib.closing(sqlite3.connect(target, timeout=30)) as dst,
    ):
        dst.execute("PRAGMA synchronous=OFF")  # a test's file: no wait on the disk to flush
        src.backup(dst)
