"""Shared fixtures: a real SSH fleet (sshd per host in its own namespace), a git host serving
bare repos over SSH, a real svnserve, and a Ferryman home with a migrated database."""

from __future__ import annotations

import contextlib
import functools
import os
import re
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

FLEET_SIZE = 5


def worker_net(base: str, worker: str | None) -> str:
    """The loopback /24 of one pytest-xdist worker: ``gw0`` takes ``base`` itself, ``gw1`` the
    next one (127.0.100 → 127.0.101), and so on; a run without xdist takes ``base``."""
    parts = base.split(".")
    if len(parts) != 3 or parts[0] != "127" or not all(p.isdigit() for p in parts):
        raise ValueError(f"FERRYMAN_TEST_NET must look like 127.0.100, not {base!r}")
    index = int(worker[2:]) if worker and worker.startswith("gw") and worker[2:].isdigit() else 0
    third = int(parts[2]) + index
    if third > 255:
        raise ValueError(
            f"FERRYMAN_TEST_NET={base} leaves no range for xdist worker {worker}: "
            "pick a lower base or fewer workers"
        )
    return f"{parts[0]}.{parts[1]}.{third}"


# Everything a test run listens on or owns is this worker's alone, so that xdist workers (and
# other test runs on the machine, each with its own FERRYMAN_TEST_NET) never meet:
#   NET.1-5    the fleet's hosts        NET.50 the git host      NET.51 svnserve
#   NET.60     an extra host (test_deploy)
#   NET.70-79  servers a test starts on a fixed port (SERVICES below)
#   NET.201-203 notification receivers (test_outbound)
# Under xdist, run with -n N, the workers take N consecutive ranges from FERRYMAN_TEST_NET up.
BASE_NET = os.environ.get("FERRYMAN_TEST_NET", "127.0.100")
NET = worker_net(BASE_NET, os.environ.get("PYTEST_XDIST_WORKER"))
SERVICES = {
    "follow_server": f"{NET}.70",  # tests/cli/test_follow_restart.py
    "outage_server": f"{NET}.71",  # tests/api/test_database_outage.py
    "outage_postgres": f"{NET}.72",  # tests/api/test_database_outage.py
    "jobs_postgres": f"{NET}.73",  # tests/jobs/test_database_outage.py
    "root_path_proxy": f"{NET}.74",  # tests/ops/test_root_path.py
}
# Deploys run their sandboxes as uid base + deploy id, and every test's database numbers its
# deploys from 1: two workers sharing a base would share uids (a cancel kills whatever runs as
# the deploy's uid). Each range has its own base, apart from the product's default (1.9e9) and
# the bases test_sandbox and test_review_attacks pick (1.95e9, 1.96e9 and up).
SANDBOX_UID_BASE = 1_800_000_000 + int(NET.rsplit(".", 1)[1]) * 100_000
os.environ["FERRYMAN_SANDBOX_UID_BASE"] = str(SANDBOX_UID_BASE)  # servers and workers we start
# The sandbox's stage dir (/run/ferryman-sandbox) is shared safely: its numbered dirs are only
# empty mount points, bound on inside each sandbox's own private mount namespace.


# The modules whose tests take longest (the durations scripts/test prints), started first:
# pytest-xdist deals the first quarter of the tests to its workers in turn, so these spread
# over every worker at the start instead of one of them running late while the others idle.
SLOW_FIRST = (
    "tests/ops/test_container.py",
    "tests/jobs/test_queue.py",
    "tests/ops/test_backup_units.py",
    "tests/jobs/test_fairness.py",
    "tests/pipeline/test_review_16_pull.py",
    "tests/pipeline/test_pull.py",
    "tests/jobs/test_review_16_late_agents.py",
    "tests/cli/test_project_delete.py",
    "tests/web/test_browser_walle.py",
    "tests/ops/test_serve.py",
    "tests/ops/test_backup_fleet.py",
    "tests/cli/test_groups_cli.py",
    "tests/ops/test_upgrade.py",
    "tests/cli/test_cli.py",
)


# What a test that starts processes of its own uses: a server or the CLI as a process
# (tests/helpers.running_server, tests/ops/servers), a browser, a private PostgreSQL, any
# subprocess. A test is marked ``processes`` when its module, or the module of any fixture it
# uses, names one of them (this file excepted: it names them here).
STARTS_PROCESSES = re.compile(
    "|".join(
        ("running_server", r"tests\.ops\.servers", "subprocess", "playwright", "PrivatePostgres")
    )
)


# The backends of ``backend`` beside SQLite: a test's run on one of them is marked ``backends``.
OTHER_BACKENDS = tuple(name for name in databases.BACKENDS if name != "sqlite")


@functools.cache
def _starts_processes(source: str) -> bool:
    path = Path(source)
    if path == Path(__file__) or path.suffix != ".py":
        return False
    try:
        return bool(STARTS_PROCESSES.search(path.read_text(encoding="utf-8")))
    except OSError:
        return False


def _sources(item: pytest.Item) -> set[str]:
    """The files of a test and of every fixture it uses."""
    files = {str(item.path)}
    info = getattr(item, "_fixtureinfo", None)
    for defs in getattr(info, "name2fixturedefs", {}).values():
        for fixturedef in defs:
            code = getattr(fixturedef.func, "__code__", None)
            if code is not None:
                files.add(code.co_filename)
    return files


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that needs the fleet (any of its fixtures asks for ``fleet``) is marked
    ``fleet``, so ``-m "not fleet"`` never starts one; every test that starts processes of
    its own (``STARTS_PROCESSES``) is marked ``processes``, so ``-m "not fleet and not
    processes"`` — the inner loop — is the tests of code in this process and the databases;
    the PostgreSQL and MariaDB runs of a test parametrized over ``backend`` are marked
    ``backends``, so ``-m "... and not backends"`` runs such a test on SQLite only.
    The slowest modules (``SLOW_FIRST``) go first, each keeping its own order."""
    for item in items:
        if "fleet" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("fleet"):
            item.add_marker(pytest.mark.fleet)
        if not item.get_closest_marker("processes") and any(
            _starts_processes(source) for source in _sources(item)
        ):
            item.add_marker(pytest.mark.processes)
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("backend") in OTHER_BACKENDS:
            item.add_marker(pytest.mark.backends)
    rank = {module: place for place, module in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashes() -> Iterator[None]:
    """argon2 at its cheapest in this process: the tests make thousands of users and
    sign-ins, and the hash parameters are not what they test (servers the tests start as
    processes keep the real ones; a hash carries its own parameters, so both read each
    other's). Production code never sees these parameters."""
    from argon2 import PasswordHasher

    from ferryman.services import users

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        yield


_ROUTES_BUILT_ONCE = contextlib.ExitStack()


def pytest_configure(config: pytest.Config) -> None:
    """FastAPI builds the models of an app's routes (a pydantic adapter per parameter, body
    and response) on the app's first requests, or its first OpenAPI document: ~0.6 s of CPU
    for each of the hundreds of apps the tests make. In this process an app reuses what an
    earlier app built for the same route (``testing/routes.built_once``): the same models, a
    handler of its own — from the start, so that the apps modules build at collection (to list
    the routes, to read the document) share them too. Servers the tests start as processes
    build their own."""
    from ferryman.testing.routes import built_once

    _ROUTES_BUILT_ONCE.enter_context(built_once())


def pytest_unconfigure(config: pytest.Config) -> None:
    _ROUTES_BUILT_ONCE.close()


@pytest.fixture(scope="session", autouse=True)
def migrated_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[databases.Templates]:
    """``Database.upgrade`` of a database with no table at all copies a template migrated
    once per backend and worker (``testing/databases.Templates``) instead of running every
    migration again: the tests make a database or several each. A database that holds
    anything — the migration tests' older schemas — is migrated for real, and so is every
    database of a server the tests start as a process. ``db_url``'s databases go back to
    the worker's pool afterwards, cleaned, when they can (``Templates.recycle``)."""
    migrate = Database.upgrade
    templates = databases.Templates(tmp_path_factory.mktemp("templates"), migrate)

    def upgrade(db: Database) -> None:
        if not templates.clone_into(db):
            migrate(db)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Database, "upgrade", upgrade)
        try:
            yield templates
        finally:
            templates.close()


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
def fleet(request: pytest.FixtureRequest) -> Iterator[Fleet]:
    item = getattr(request, "_pyfuncitem", None)  # the test that asked for it first
    if item is not None and not item.get_closest_marker("fleet"):
        pytest.fail(  # it would start a fleet under -m "not fleet"
            f"{item.nodeid} reaches the fleet without asking for it as a fixture: "
            "name the fleet fixture (or one that uses it) among its arguments"
        )
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
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """A server's settings with a home of its own. A test that uses the fleet (its own
    fixtures ask for ``fleet``) gets the fleet's client key and known_hosts in that home; any
    other test runs without starting a fleet."""
    home = tmp_path / "home"
    (home / "ssh").mkdir(parents=True)
    if "fleet" in request.fixturenames:
        fleet: Fleet = request.getfixturevalue("fleet")
        shutil.copy(fleet.client_key, home / "ssh" / "id_ed25519")
        shutil.copy(fleet.known_hosts, home / "ssh" / "known_hosts")
    return load_settings(
        {
            "FERRYMAN_HOME": str(home),
            "FERRYMAN_LOCK_LEASE": "30",
            "FERRYMAN_SANDBOX_UID_BASE": str(SANDBOX_UID_BASE),
        }
    )


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
def db_url(backend: str, tmp_path: Path, migrated_templates: databases.Templates) -> Iterator[str]:
    """A fresh, empty database on ``backend``; afterwards dropped, or cleaned back to a
    fresh copy's state (schema, rows and next ids checked) for a later test of this worker
    (PostgreSQL and MariaDB: creating, migrating and dropping one costs seconds)."""
    url = migrated_templates.create(backend, tmp_path)
    yield url
    migrated_templates.recycle(url)


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
