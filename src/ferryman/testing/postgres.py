"""A private PostgreSQL server for outage tests: its own data directory, its own loopback
address and port, started and stopped at will (the shared one on 5432 is never touched). Tests
that run beside each other (pytest-xdist workers, other test runs) give each one an address
of their own range, so a fixed port never collides.

    pg = PrivatePostgres(host="127.0.100.72")  # a new temp data dir (initdb on first start)
    url = pg.start(15432)             # postgresql+psycopg://postgres@127.0.100.72:15432/postgres
    db_url = pg.create_database("ferryman")
    pg.stop()                         # an outage: fast shutdown, every connection dropped
    pg.start()                        # back, same port, same data
    pg.remove()                       # stop and delete the data directory

The server runs as the ``postgres`` user when this process is root (PostgreSQL refuses to run
as root) and as the current user otherwise; ``trust`` authentication, listening on the given
loopback address only, its Unix socket inside the data directory. The binaries come from
``FERRYMAN_PG_BIN`` or the newest ``/usr/lib/postgresql/*/bin``. A ``data_dir`` of your own
must be reachable by that user (pytest's ``tmp_path`` is not: it sits under a 0700 directory of
root's); the default, a new directory under the system temp dir, is. ``unavailable()`` says why
one cannot be started here (tests skip on it).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

TIMEOUT = 60  # seconds any pg_ctl or initdb call may take


def pg_bin() -> Path | None:
    """The directory of ``initdb``/``pg_ctl``, or None when PostgreSQL is not installed."""
    named = os.environ.get("FERRYMAN_PG_BIN")
    if named:
        return Path(named)
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    found = [p for p in found if (p / "pg_ctl").exists() and (p / "initdb").exists()]
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def unavailable() -> str | None:
    """Why a private PostgreSQL cannot be started here, or None."""
    if pg_bin() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root needs a `postgres` user to run PostgreSQL as"
    return None


class PrivatePostgres:
    """One PostgreSQL server in ``data_dir`` (a new temporary directory by default)."""

    def __init__(self, data_dir: Path | None = None, host: str = "127.0.0.1") -> None:
        if not host.startswith("127."):
            raise ValueError(f"a private PostgreSQL listens on loopback only, not {host}")
        self.host = host
        self.port: int | None = None
        self.base = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="ferryman-pg-"))
        self.data = self.base / "data"
        found = pg_bin()
        if found is None:
            raise RuntimeError(unavailable() or "PostgreSQL is not installed")
        self.bin: Path = found
        self._user = _run_as_user()

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the ``postgres`` database (after ``start``)."""
        if self.port is None:
            raise RuntimeError("the private PostgreSQL was never started")
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/postgres"

    def start(self, port: int | None = None) -> str:
        """Start the server (initdb first if the data directory is new) on ``port`` (default:
        the port of the last start) and wait until it accepts connections; returns ``url``."""
        if port is not None:
            self.port = port
        if self.port is None:
            raise ValueError("the first start needs a port")
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        options = (
            f"-c listen_addresses={self.host} -c port={self.port} "
            f"-c unix_socket_directories={self.data} -c fsync=off "
            "-c max_connections=100 -c shared_buffers=16MB"
        )
        self._pg_ctl("start", "-w", "-t", str(TIMEOUT), "-o", options, "-l", str(self.log))
        return self.url

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: roll back and drop every connection; ``immediate``: as
        if it crashed). Stopping a stopped server does nothing."""
        if self.running():
            self._pg_ctl("stop", "-w", "-t", str(TIMEOUT), "-m", mode)

    def running(self) -> bool:
        return self._pg_ctl("status", check=False).returncode == 0

    def create_database(self, name: str) -> str:
        """A new database on this server; returns its SQLAlchemy URL."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"not a plain database name: {name!r}")
        engine = create_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)

    def remove(self) -> None:
        """Stop the server (immediately) and delete its directory."""
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    @property
    def log(self) -> Path:
        return self.base / "postgres.log"

    def __enter__(self) -> PrivatePostgres:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.remove()

    # --- running the tools -----------------------------------------------------------------

    def _initdb(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            os.chown(self.base, self._user.pw_uid, self._user.pw_gid)
        self.base.chmod(0o700)
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E",
            "UTF8", "--no-instructions",
        )  # fmt: skip

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run("pg_ctl", "-D", str(self.data), *args, check=check)

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin / tool), *args]
        if self._user is not None:
            argv = ["runuser", "-u", self._user.pw_name, "--", *argv]
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=TIMEOUT + 10,
            cwd=self.base if self.base.exists() else None,
            stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{tool} {' '.join(args[:3])} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}\n{tail}"
            )
        return result


def _run_as_user() -> pwd.struct_passwd | None:
    """Root runs PostgreSQL as ``postgres``; anyone else as themselves (None)."""
    return pwd.getpwnam("postgres") if os.geteuid() == 0 else None
