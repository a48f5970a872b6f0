"""Backup and restore without a fleet: the dump/load commands are values (no password on a
command line), a hostile archive writes nothing, a wrong key or a used home is refused before
anything is written, and PostgreSQL and MariaDB round-trip through their real dump tools."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ferryman import backup
from ferryman.db.models import User
from ferryman.db.session import Database
from ferryman.errors import ConfigError
from ferryman.testing import databases
from tests.ops.servers import cli

PASSWORD = "correct horse battery"


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo | str) -> bytes:
    found = tar.extractfile(member)
    assert found is not None, f"{member} is not a file of the archive"
    return found.read()


def test_the_dump_and_load_commands_never_carry_the_database_password(tmp_path):
    pg = backup.dump_command("postgresql+psycopg://ops:pa:ss@127.0.0.1:5433/prod", tmp_path / "d")
    assert pg.argv == (
        "pg_dump", "--format=custom", "--no-owner", "--no-privileges",
        "-h", "127.0.0.1", "-p", "5433", "-U", "ops",
        "--file", str(tmp_path / "d"), "--dbname", "prod",
    )  # fmt: skip
    assert pg.secret_file == "127.0.0.1:5433:*:ops:pa\\:ss\n"
    my = backup.load_command(
        "mysql+pymysql://ops:p%22w@127.0.0.1/prod?charset=utf8mb4", tmp_path / "d"
    )
    assert my.argv[1:] == (
        f"--defaults-extra-file={backup.SECRET}", "--default-character-set=utf8mb4", "--", "prod",
    )  # fmt: skip
    assert my.stdin == str(tmp_path / "d")
    assert 'password="p\\"w"' in my.secret_file
    for command in (pg, my):
        assert not any("pa:ss" in a or 'p"w' in a for a in command.argv)


def test_a_database_name_that_looks_like_an_option_is_refused(tmp_path):
    with pytest.raises(Exception, match="no usable database"):
        backup.dump_command("postgresql+psycopg://u@127.0.0.1/-Ffoo", tmp_path / "d")


def _make_home(home: Path) -> Path:
    """A home as its first user makes it: migrated by the CLI, with the server's key pair."""
    cli(
        home,
        "admin",
        "create-user",
        "alice",
        "--password",
        PASSWORD,
        "--superuser",
        "--create-home",
    )
    cli(home, "ssh-key")  # the server's key pair, as `serve` makes it
    return home


class Homes:
    """``homes(tmp_path, name)``: a copy of the home ``name``, made by the CLI once per module
    (each run of the CLI migrates a database: seconds) and copied with its modes for each
    test. Homes of different names are made apart: their own secret key, keys and database."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.made: dict[str, Path] = {}

    def __call__(self, tmp_path: Path, name: str = "a") -> Path:
        if name not in self.made:
            self.made[name] = _make_home(self.scratch / name)
        return Path(shutil.copytree(self.made[name], tmp_path / name, symlinks=True))


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> Homes:
    return Homes(tmp_path_factory.mktemp("homes"))


@pytest.fixture(scope="module")
def backup_of_a(homes: Homes, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(archive, its key file): ``ferryman backup`` of the home ``a``, once per module."""
    scratch = tmp_path_factory.mktemp("backup")
    cli(homes(scratch), "backup", "-o", str(scratch / "b.tgz"))
    return scratch / "b.tgz", scratch / "b.tgz.key"


def test_a_sqlite_home_round_trips_with_its_keys_and_the_key_stays_apart(tmp_path, homes):
    home = homes(tmp_path)
    made = cli(home, "backup", "-o", str(tmp_path / "b.tgz"))
    assert "backup written" in made.stdout and "store it apart" in made.stderr
    with tarfile.open(tmp_path / "b.tgz") as tar:
        names = tar.getnames()
        assert all(m.mode & 0o077 == 0 for m in tar.getmembers())
    assert "home/ssh/id_ed25519" in names and "database.sqlite" in names
    assert not any("secret" in n for n in names)  # the key is the file beside it
    assert (tmp_path / "b.tgz").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "b.tgz.key").stat().st_mode & 0o777 == 0o600

    restored = tmp_path / "b"
    said = cli(
        restored, "restore", str(tmp_path / "b.tgz"), "--secret-key", str(tmp_path / "b.tgz.key")
    )
    assert "restored" in said.stdout
    assert (restored / "ssh" / "id_ed25519").read_bytes() == (
        home / "ssh" / "id_ed25519"
    ).read_bytes()
    assert (restored / "ssh" / "id_ed25519").stat().st_mode & 0o777 == 0o600
    assert (restored / "secret.key").read_bytes().strip() == (
        home / "secret.key"
    ).read_bytes().strip()
    assert (restored / "ferryman.db").stat().st_mode & 0o777 == 0o600
    db = Database(f"sqlite:///{restored / 'ferryman.db'}")
    try:
        with db.read() as s:
            assert s.scalars(select(User.username)).all() == ["alice"]
    finally:
        db.dispose()
    login = cli(restored, "admin", "create-user", "bob", "--password", PASSWORD)
    assert login.returncode == 0  # the restored home works as a home


def test_restore_refuses_a_wrong_key_and_a_used_home_before_writing_anything(tmp_path, homes):
    home = homes(tmp_path)
    cli(home, "backup", "-o", str(tmp_path / "b.tgz"))
    other = homes(tmp_path, "other")
    fresh = tmp_path / "fresh"
    wrong = cli(
        fresh,
        "restore",
        str(tmp_path / "b.tgz"),
        "--secret-key",
        str(other / "secret.key"),
        check=False,
    )
    assert (
        wrong.returncode == 2
        and "not the one the backup's database was encrypted with" in wrong.stderr
    )
    assert not fresh.exists()
    used = cli(
        other,
        "restore",
        str(tmp_path / "b.tgz"),
        "--secret-key",
        str(tmp_path / "b.tgz.key"),
        check=False,
    )
    assert used.returncode == 2 and "already holds a Ferryman home" in used.stderr
    missing = cli(fresh, "restore", str(tmp_path / "b.tgz"), check=False)
    assert missing.returncode == 2 and "--secret-key" in missing.stderr


@pytest.mark.parametrize(
    "member",
    ["../escaped", "/etc/cron.d/evil", "home/../../escaped", "home/secret.key", "symlink"],
)
def test_a_hostile_archive_is_refused_and_writes_nothing(tmp_path, member, backup_of_a):
    archive, key = backup_of_a
    with tarfile.open(archive) as tar:
        good = [(m, _read(tar, m) if m.isfile() else None) for m in tar.getmembers()]
    evil = tmp_path / "evil.tgz"
    with tarfile.open(evil, "w:gz") as tar:
        for info, data in good:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
        if member == "symlink":
            info = tarfile.TarInfo("home/ssh/known_hosts2")
            info.type, info.linkname = tarfile.SYMTYPE, "/root/.ssh/authorized_keys"
            tar.addfile(info)
        else:
            info = tarfile.TarInfo(member)
            info.size = 5
            tar.addfile(info, io.BytesIO(b"owned"))
    fresh = tmp_path / "fresh"
    refused = cli(fresh, "restore", str(evil), "--secret-key", str(key), check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "which no Ferryman backup has" in refused.stderr
    assert not fresh.exists() and not (tmp_path / "escaped").exists()


def test_an_archive_whose_manifest_is_a_directory_is_refused_as_no_backup(tmp_path):
    archive = tmp_path / "dir.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    with pytest.raises(ConfigError, match=r"not a Ferryman backup \(manifest\.json is no file\)"):
        backup.read_manifest(archive)


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_postgresql_and_mariadb_round_trip_through_their_dump_tools(tmp_path, kind):
    reason = databases.unavailable(kind)
    if reason:
        pytest.skip(reason)
    source, target = databases.create(kind, tmp_path), databases.create(kind, tmp_path)
    try:
        home = tmp_path / "a"
        env: dict[str, Any] = {"FERRYMAN_DATABASE_URL": source}
        cli(home, "admin", "create-user", "alice", "--password", PASSWORD, "--create-home", **env)
        cli(home, "backup", "-o", str(tmp_path / "b.tgz"), **env)
        with tarfile.open(tmp_path / "b.tgz") as tar:
            manifest = json.loads(_read(tar, "manifest.json"))
        assert manifest["backend"] == kind and manifest["revision"]
        restored = tmp_path / "b"
        key = str(tmp_path / "b.tgz.key")
        elsewhere: dict[str, Any] = {"FERRYMAN_DATABASE_URL": target}
        cli(restored, "restore", str(tmp_path / "b.tgz"), "--secret-key", key, **elsewhere)
        db = Database(target)
        try:
            with db.read() as s:
                assert s.scalars(select(User.username)).all() == ["alice"]
        finally:
            db.dispose()
        again = cli(
            tmp_path / "c",
            "restore",
            str(tmp_path / "b.tgz"),
            "--secret-key",
            key,
            check=False,
            **elsewhere,
        )
        assert again.returncode == 2 and "is not empty" in again.stderr  # never over a used one
        sqlite = cli(
            tmp_path / "d", "restore", str(tmp_path / "b.tgz"), "--secret-key", key, check=False
        )
        assert sqlite.returncode == 2 and f"backup is of a {kind} database" in sqlite.stderr
    finally:
        databases.drop(source)
        databases.drop(target)
