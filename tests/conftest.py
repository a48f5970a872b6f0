"""Shared fixtures: a real SSH fleet (sshd per host in its own namespace), a git host serving
bare repos over SSH, a real svnserve, and a Ferryman home with a migrated database."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferryman.bootstrap import attach_key
from ferryman.config.settings import Settings, load_settings
from ferryman.db.session import Database
from ferryman.secretbox import SecretBox, load_key
from ferryman.testing import databases
from ferryman.testing.fleet import Fleet, FleetHost, add_host, start_fleet, start_svnserve

NET = os.environ.get("FERRYMAN_TEST_NET", "127.0.100")
FLEET_SIZE = 5


def _fleet_available() -> str | None:
    if os.geteuid() != 0:
        return "the test fleet needs root (mount namespaces)"
    for tool in (
        "/usr/sbin/sshd",
        shutil.which("unshare"),
        shutil.which("svnserve"),
        shutil.which("rsync"),
    ):
        if not tool or not Path(tool).exists():
            return f"missing {tool}: run scripts/test (it installs openssh-server, subversion)"
    return None


@pytest.fixture(scope="session")
def fleet() -> Iterator[Fleet]:
    reason = _fleet_available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    base = Path(tempfile.mkdtemp(prefix="ferryman-fleet-"))
    fleet = start_fleet(base, FLEET_SIZE, network=NET, first=1)
    try:
        add_host(fleet, "git", f"{NET}.50")
        yield fleet
    finally:
        fleet.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def targets(fleet: Fleet) -> list[FleetHost]:
    return [h for h in fleet.hosts if h.name != "git"]


@pytest.fixture
def git_host(fleet: Fleet) -> FleetHost:
    return next(h for h in fleet.hosts if h.name == "git")


@pytest.fixture(scope="session")
def svn(fleet: Fleet) -> tuple[Path, str]:
    """(root of the served repositories, base URL) of a real svnserve."""
    root = fleet.base / "svnroot"
    root.mkdir(exist_ok=True)
    return root, start_svnserve(fleet, root, f"{NET}.51")


@pytest.fixture
def settings(tmp_path: Path, fleet: Fleet) -> Settings:
    home = tmp_path / "home"
    (home / "ssh").mkdir(parents=True)
    shutil.copy(fleet.client_key, home / "ssh" / "id_ed25519")
    shutil.copy(fleet.known_hosts, home / "ssh" / "known_hosts")
    return load_settings({"FERRYMAN_HOME": str(home), "FERRYMAN_LOCK_LEASE": "30"})


def _require_databases() -> bool:
    return os.environ.get("FERRYMAN_REQUIRE_DATABASES", "") not in ("", "0", "no")


@pytest.fixture(params=databases.BACKENDS, scope="module")
def backend(request: pytest.FixtureRequest) -> str:
    """Each DB-facing test runs on SQLite, PostgreSQL and MariaDB. A server that cannot be
    reached is a loud skip — or a failure where FERRYMAN_REQUIRE_DATABASES is set (CI)."""
    name = str(request.param)
    reason = databases.unavailable(name)
    if reason:
        if _require_databases():
            pytest.fail(reason)
        pytest.skip(reason)
    return name


@pytest.fixture
def db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on ``backend``, dropped afterwards."""
    url = databases.create(backend, tmp_path)
    yield url
    databases.drop(url)


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    """A migrated database. The engine tests deploy straight to ``production``, so its
    approval flag is off here; ticket tests turn it back on."""
    database = Database(settings.database_url)
    database.upgrade()
    attach_key(database, SecretBox(load_key(settings.home)))  # the key file servers use too
    set_approval(database, "production", False)
    yield database
    database.dispose()


def set_approval(database: Database, env: str, required: bool, space: str = "default") -> None:
    from ferryman.services import inventory
    from ferryman.services.audit import SYSTEM

    for row in inventory.list_environments(database, SYSTEM, space):
        if row["name"] == env:
            inventory.update_environment(database, SYSTEM, row["id"], requires_approval=required)
