"""``ferryman backup`` and ``ferryman restore``: one archive with everything but the key.

The archive (a gzipped tar, mode 0600) holds ``manifest.json`` (version, schema revision,
backend, the sealed key canary), the database — SQLite through its online backup API (a copy
of the file under WAL could be torn), PostgreSQL with ``pg_dump --format=custom``, MariaDB
with ``mariadb-dump --single-transaction`` (all three are consistent while deploys run) — the
SSH keys and pinned host keys (``ssh/``), ``ldap.yaml`` and, on request, the pull-mode
artifacts. The secret key is written to a file of its own: whoever holds both can decrypt
every secret, so they are to be stored apart.

``restore`` goes into a new home only (and, for PostgreSQL or MariaDB, an empty database of
the same kind), checks the key against the archive's canary before writing anything, refuses
archive members that are not plain files and directories inside the home, then migrates the
restored database to this version's schema.

Command builders (``dump_command``, ``load_command``) are pure; ``create``/``restore`` run
them. Database passwords go to the tools in a 0600 file, never on a command line."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from sqlalchemy import make_url, select, text
from sqlalchemy.engine import URL

from ferryman import __version__
from ferryman.config.settings import Settings
from ferryman.db.models import KeyValue
from ferryman.db.session import Database
from ferryman.errors import BackupFailed, ConfigError
from ferryman.secretbox import CANARY, KEY_ENV, SecretBox, key_file

FORMAT = 1
DUMP_TIMEOUT = 3600.0
HOME_PARTS = ("ssh", "ldap.yaml")  # from FERRYMAN_HOME, beside the database
ARTIFACTS = "artifacts"
KEPT = (*HOME_PARTS, ARTIFACTS)
DATABASE_FILES = {
    "sqlite": "database.sqlite",
    "postgresql": "database.pgdump",
    "mariadb": "database.sql",
}


def backend(url: str) -> str:
    """``sqlite``, ``postgresql`` or ``mariadb`` (MySQL too) for a database URL."""
    name = make_url(url).get_backend_name()
    if name == "sqlite":
        return "sqlite"
    if name == "postgresql":
        return "postgresql"
    if name in ("mysql", "mariadb"):
        return "mariadb"
    raise ConfigError(f"cannot back up a {name} database (SQLite, PostgreSQL or MariaDB)")


@dataclass(frozen=True)
class Command:
    """What to run for a dump or a load: argv, and the secret file's text (0600) if any."""

    argv: tuple[str, ...]
    secret_file: str = ""  # the tool's password file; its path replaces SECRET in argv
    stdin: str = ""  # a file to feed on standard input


SECRET = "{secret-file}"


def _pg_connection(url: URL) -> tuple[list[str], str]:
    args = ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432)]
    if url.username:
        args += ["-U", url.username]
    # a .pgpass line: host:port:database:user:password (':' and '\' escaped)
    password = ""
    if url.password is not None:
        fields = [url.host or "127.0.0.1", str(url.port or 5432), "*", url.username or "*"]
        fields.append(str(url.password))
        password = ":".join(f.replace("\\", "\\\\").replace(":", "\\:") for f in fields) + "\n"
    return args, password


def _my_connection(url: URL) -> tuple[list[str], str]:
    lines = ["[client]"]
    if url.host:
        lines.append(f"host={url.host}")
    if url.port:
        lines.append(f"port={url.port}")
    if url.username:
        lines.append(f"user={url.username}")
    if url.password is not None:
        quoted = str(url.password).replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'password="{quoted}"')
    return [f"--defaults-extra-file={SECRET}"], "\n".join(lines) + "\n"


def _database(url: URL) -> str:
    name = url.database or ""
    if not name or name.startswith("-") or "\n" in name:
        raise ConfigError(f"the database URL names no usable database: {name!r}")
    return name


def dump_command(url_text: str, out: Path) -> Command:
    """The command that writes a consistent dump of a PostgreSQL or MariaDB database."""
    url = make_url(url_text)
    kind = backend(url_text)
    if kind == "postgresql":
        args, password = _pg_connection(url)
        argv = (
            "pg_dump",
            "--format=custom",
            "--no-owner",
            "--no-privileges",
            *args,
            "--file",
            str(out),
            "--dbname",
            _database(url),
        )
        return Command(argv, password)
    if kind == "mariadb":
        args, password = _my_connection(url)
        argv = (
            _mariadb_tool("mariadb-dump", "mysqldump"),
            *args,
            "--single-transaction",
            "--quick",
            "--routines",
            "--triggers",
            "--no-tablespaces",
            "--default-character-set=utf8mb4",
            f"--result-file={out}",
            "--",
            _database(url),
        )
        return Command(argv, password)
    raise ConfigError("SQLite is backed up through its online backup API, not a command")


def load_command(url_text: str, dump: Path) -> Command:
    """The command that loads a dump made by ``dump_command`` into an empty database."""
    url = make_url(url_text)
    kind = backend(url_text)
    if kind == "postgresql":
        args, password = _pg_connection(url)
        argv = (
            "pg_restore",
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            *args,
            "--dbname",
            _database(url),
            str(dump),
        )
        return Command(argv, password)
    if kind == "mariadb":
        args, password = _my_connection(url)
        argv = (
            _mariadb_tool("mariadb", "mysql"),
            *args,
            "--default-character-set=utf8mb4",
            "--",
            _database(url),
        )
        return Command(argv, password, stdin=str(dump))
    raise ConfigError("SQLite is restored as a file, not through a command")


def _mariadb_tool(name: str, older: str) -> str:
    return name if shutil.which(name) or not shutil.which(older) else older


def run(command: Command, timeout: float = DUMP_TIMEOUT) -> None:
    """Run a dump or load command, its password in a 0600 file removed afterwards."""
    tool = command.argv[0]
    if not shutil.which(tool):
        raise BackupFailed(f"{tool} is not installed (Debian: postgresql-client or mariadb-client)")
    with _secret_file(command.secret_file) as path:
        argv = [a.replace(SECRET, str(path)) for a in command.argv]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
        if path is not None and tool in ("pg_dump", "pg_restore"):
            env["PGPASSFILE"] = str(path)
        stdin = open(command.stdin, "rb") if command.stdin else subprocess.DEVNULL  # noqa: SIM115
        try:
            result = subprocess.run(
                argv, stdin=stdin, capture_output=True, timeout=timeout, env=env, check=False
            )
        except subprocess.TimeoutExpired:
            raise BackupFailed(f"{tool} did not finish within {timeout:.0f} s") from None
        finally:
            if command.stdin:
                stdin.close()  # type: ignore[union-attr]
    if result.returncode != 0:
        tail = result.stderr.decode(errors="replace").strip()[-800:]
        raise BackupFailed(f"{tool} failed (exit {result.returncode}): {tail}")


@contextlib.contextmanager
def _secret_file(content: str) -> Iterator[Path | None]:
    if not content:
        yield None
        return
    fd, name = tempfile.mkstemp(prefix="ferryman-db-")  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(content)
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


# --- backup -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupResult:
    archive: Path
    key: Path | None  # the secret key's own file; None when it lives in FERRYMAN_SECRET_KEY
    backend: str
    revision: str
    size: int


def _revision(db: Database) -> str:
    with db.engine.connect() as connection:
        return str(connection.execute(text("SELECT version_num FROM alembic_version")).scalar())


def _canary(db: Database) -> str:
    with db.read() as s:
        value = s.scalar(select(KeyValue.value).where(KeyValue.key == "key_check"))
    if value is None:
        raise BackupFailed("this database has no key check: start the server once first")
    return str(value)


def _sqlite_copy(url: str, out: Path) -> None:
    """SQLite's online backup: a consistent copy while others read and write."""
    path = make_url(url).database or ""
    source = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(out)
    try:
        source.backup(target, pages=1024, sleep=0.01)
    finally:
        target.close()
        source.close()


def create(settings: Settings, output: Path, *, artifacts: bool = False) -> BackupResult:
    """Write the archive to ``output`` (and the key beside it as ``<output>.key``)."""
    kind = backend(settings.database_url)
    output = output.absolute()
    if output.exists():
        raise ConfigError(f"{output} exists: choose a new file for the backup")
    keyed = output.with_name(output.name + ".key")
    from_env = bool(os.environ.get(KEY_ENV, "").strip())
    if not from_env:
        if keyed.exists():
            raise ConfigError(f"{keyed} exists: choose a new file for the backup")
        if not key_file(settings.home).is_file():
            raise ConfigError(
                f"no secret key at {key_file(settings.home)} and no {KEY_ENV}: this home has "
                "never been started, or its key is kept elsewhere (set FERRYMAN_SECRET_KEY)"
            )
    db = Database(settings.database_url)
    try:
        revision, canary = _revision(db), _canary(db)
    finally:
        db.dispose()
    with tempfile.TemporaryDirectory(prefix="ferryman-backup-") as scratch:
        dump = Path(scratch) / DATABASE_FILES[kind]
        if kind == "sqlite":
            _sqlite_copy(settings.database_url, dump)
        else:
            run(dump_command(settings.database_url, dump))
        manifest = {
            "format": FORMAT,
            "ferryman": __version__,
            "created_at": datetime.now(UTC).isoformat(),
            "backend": kind,
            "revision": revision,
            "key_check": canary,
            "artifacts": artifacts,
        }
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
                _add_bytes(tar, "manifest.json", json.dumps(manifest, indent=2).encode())
                tar.add(dump, arcname=dump.name, filter=_plain_only)
                for part in (*HOME_PARTS, *((ARTIFACTS,) if artifacts else ())):
                    source = settings.home / part
                    if source.exists():
                        tar.add(source, arcname=f"home/{part}", filter=_plain_only)
        except BaseException:
            output.unlink(missing_ok=True)
            raise
    key = None
    if not from_env:
        key = keyed
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key_file(settings.home).read_bytes())
    return BackupResult(output, key, kind, revision, output.stat().st_size)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o600, int(datetime.now(UTC).timestamp())
    tar.addfile(info, io.BytesIO(data))


def _plain_only(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """Only files and directories go into an archive (a socket or link in the home does
    not), readable by their owner only."""
    if not (info.isfile() or info.isdir()):
        return None
    info.mode = 0o700 if info.isdir() else 0o600
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


# --- restore ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreResult:
    home: Path
    backend: str
    revision: str  # the archive's; the database is now at this version's head
    ferryman: str  # the version that made the archive


def _members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """Every member, checked: plain files and directories, relative, never leaving the
    archive's own tree (no ``..``, no absolute path, no link, device or fifo)."""
    found = {}
    for info in tar.getmembers():
        path = PurePosixPath(info.name)
        if path.is_absolute() or ".." in path.parts or not (info.isfile() or info.isdir()):
            raise ConfigError(f"the archive holds {info.name!r}, which no Ferryman backup has")
        top = path.parts[:1]
        if top and top[0] not in ("manifest.json", "home", *DATABASE_FILES.values()):
            raise ConfigError(f"the archive holds {info.name!r}, which no Ferryman backup has")
        if top == ("home",) and len(path.parts) > 1 and path.parts[1] not in KEPT:
            raise ConfigError(f"the archive holds {info.name!r}, which no Ferryman backup has")
        found[str(path)] = info
    return found


def read_manifest(archive: Path) -> dict[str, object]:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = _members(tar)
            if "manifest.json" not in members:
                raise ConfigError(f"{archive} is not a Ferryman backup (no manifest.json)")
            handle = tar.extractfile(members["manifest.json"])
            if handle is None:  # a directory of that name
                raise ConfigError(f"{archive} is not a Ferryman backup (manifest.json is no file)")
            manifest = json.loads(handle.read())
    except (OSError, tarfile.TarError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{archive} is not a readable Ferryman backup: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ConfigError(f"{archive} is a backup format this version does not know")
    return manifest


def _home_is_new(settings: Settings) -> None:
    home = settings.home
    taken = [p for p in (home / "ferryman.db", key_file(home), settings.ssh_key) if p.exists()]
    if taken:
        raise ConfigError(
            f"{home} already holds a Ferryman home ({taken[0].name}): restore into a new "
            "FERRYMAN_HOME (move this one aside first if it is to be replaced)"
        )


def _empty_database(url: str) -> None:
    db = Database(url)
    try:
        with db.engine.connect() as connection:
            tables = db.engine.dialect.get_table_names(connection)
    finally:
        db.dispose()
    if tables:
        raise ConfigError(
            f"the database of FERRYMAN_DATABASE_URL is not empty ({len(tables)} tables): "
            "restore into a new, empty database"
        )


def restore(settings: Settings, archive: Path, key: bytes) -> RestoreResult:
    """Restore ``archive`` into ``settings.home`` (new) and its database (new, empty)."""
    manifest = read_manifest(archive)
    kind = str(manifest["backend"])
    target = backend(settings.database_url)
    if kind != target:
        raise ConfigError(
            f"the backup is of a {kind} database and FERRYMAN_DATABASE_URL is {target}: "
            f"restore into {kind} (moving between kinds is not supported)"
        )
    box = SecretBox(key)
    try:
        ok = box.open(str(manifest["key_check"])) == CANARY
    except ConfigError:
        ok = False
    if not ok:
        raise ConfigError(
            "this secret key is not the one the backup's database was encrypted with: give the "
            "key file written beside the backup (--secret-key) or its FERRYMAN_SECRET_KEY"
        )
    _home_is_new(settings)
    if kind != "sqlite":
        _empty_database(settings.database_url)
    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    with tempfile.TemporaryDirectory(prefix="ferryman-restore-", dir=home) as scratch:
        with tarfile.open(archive, "r:gz") as tar:
            members = _members(tar)
            tar.extractall(scratch, members=list(members.values()), filter="data")
        root = Path(scratch)
        dump = root / DATABASE_FILES[kind]
        if not dump.is_file():
            raise ConfigError(f"{archive} has no {dump.name}")
        for part in (*HOME_PARTS, ARTIFACTS):
            source = root / "home" / part
            if source.exists():
                shutil.move(str(source), home / part)
        _tighten(home / "ssh")
        if not os.environ.get(KEY_ENV, "").strip():
            fd = os.open(key_file(home), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(key.strip() + b"\n")
        if kind == "sqlite":
            path = Path(make_url(settings.database_url).database or "")
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out, dump.open("rb") as source_file:
                shutil.copyfileobj(source_file, out)
        else:
            run(load_command(settings.database_url, dump))
    return RestoreResult(home, kind, str(manifest["revision"]), str(manifest["ferryman"]))


def _tighten(ssh: Path) -> None:
    """The restored SSH directory readable by the server's user only."""
    if not ssh.exists():
        return
    for path in [ssh, *ssh.rglob("*")]:
        os.chmod(path, 0o700 if path.is_dir() else 0o600)
