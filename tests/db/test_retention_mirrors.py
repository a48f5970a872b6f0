"""The retention run sweeps the git mirrors nothing uses (``services/retention.sweep_mirrors``),
on SQLite, PostgreSQL and MariaDB, with real git mirrors: a deleted project's goes; one that a
live project of the same space still names stays; one a running deploy uses stays until the
deploy ends; one whose lock a fetch holds stays; spaces never share one."""

from __future__ import annotations

import fcntl
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from ferryman.config.project import dump_project, parse_project
from ferryman.config.settings import Settings, load_settings
from ferryman.db.models import AuditEntry, Deploy, Project, Space
from ferryman.db.session import Database
from ferryman.services import project_deletion, projects, retention, spaces
from ferryman.vcs.factory import mirror_path
from tests.conftest import NET
from tests.helpers import ADMIN


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database(db_url)
    db.upgrade()
    yield db
    db.dispose()


@pytest.fixture
def home_settings(db_url: str, tmp_path: Path) -> Settings:
    return load_settings({"FERRYMAN_HOME": str(tmp_path / "home"), "FERRYMAN_DATABASE_URL": db_url})


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare repository with one commit: what every mirror here is a mirror of."""
    base = tmp_path_factory.mktemp("origin")
    work, bare = base / "work", base / "origin.git"
    _git("init", "--quiet", "-b", "main", str(work))
    (work / "index.html").write_text("hello\n")
    _git("-C", str(work), "add", "index.html")
    _git("-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    _git("clone", "--quiet", "--bare", str(work), str(bare))
    return bare


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def _url(name: str) -> str:
    return f"ssh://git@{NET}.96/{name}.git"  # never reached: the mirror is cloned from origin


def _project(db: Database, name: str, repo: str, space: str = "default") -> int:
    config = {
        "project": name,
        "space": space,
        "repo": repo,
        "environments": {
            "production": {
                "hosts": [f"{NET}.90"],
                "webroot": f"/srv/www/{space}-{name}",
                "releases": f"/srv/releases/{space}-{name}",
            }
        },
    }
    project, _created = projects.apply_project(db, ADMIN, parse_project(config))
    return project.id


def _space_id(db: Database, name: str) -> int:
    with db.read() as s:
        return int(s.scalar(select(Space.id).where(Space.name == name)) or 0)


def _mirror(settings: Settings, origin: Path, url: str, space_id: int) -> Path:
    """A real mirror of ``origin`` where a deploy of ``url`` in that space keeps it."""
    path = mirror_path(settings.repo_cache, url, space_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    _git("clone", "--quiet", "--mirror", str(origin), str(path))
    assert _git("--git-dir", str(path), "rev-parse", "main").strip()
    return path


def test_mirrors_of_deleted_projects_go_and_those_in_use_stay(database, home_settings, origin):
    settings = home_settings
    spaces.create_space(database, ADMIN, "ops")
    default, ops = _space_id(database, "default"), _space_id(database, "ops")
    _project(database, "shop", _url("shop"))
    _project(database, "shop-copy", _url("shop"))  # the same repository in the same space
    _project(database, "gone", _url("gone"))
    _project(database, "ops-shop", _url("shop"), space="ops")
    moved = _project(database, "moved", _url("old"))
    mirrors = {
        "shared": _mirror(settings, origin, _url("shop"), default),
        "deleted": _mirror(settings, origin, _url("gone"), default),
        "other space": _mirror(settings, origin, _url("shop"), ops),
        "running deploy": _mirror(settings, origin, _url("old"), default),
        "fetching": _mirror(settings, origin, _url("never-a-project"), default),
        "no project": _mirror(settings, origin, _url("nobody"), default),
    }
    leftover = mirrors["no project"].with_name(mirrors["no project"].name + ".cloning")
    leftover.mkdir()
    stranger = settings.repo_cache / str(default) / "notes.txt"
    stranger.write_text("not a mirror")
    elsewhere = settings.home / "keep-me.git"
    _git("clone", "--quiet", "--mirror", str(origin), str(elsewhere))
    linked = mirror_path(settings.repo_cache, _url("linked"), default)
    linked.symlink_to(elsewhere)
    # a deploy of "moved" runs with the old URL; then the project moves to a new one
    with database.transaction() as s:
        project = s.get(Project, moved)
        assert project is not None
        s.add(
            Deploy(
                project_id=moved,
                env="production",
                status="running",
                config=dict(project.config, repo=_url("old")),
            )
        )
    _project(database, "moved", _url("new"))
    project_deletion.delete_project(database, ADMIN, "gone")
    project_deletion.delete_project(database, ADMIN, "ops:ops-shop")
    # a fetch holds the lock of one mirror, as GitRepo.update does
    lock = mirrors["fetching"].with_name(mirrors["fetching"].name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        done = retention.run(database, settings)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    present = {name for name, path in mirrors.items() if path.exists()}
    assert present == {"shared", "running deploy", "fetching"}
    assert done.mirrors == 3
    assert not leftover.exists()
    assert stranger.read_text() == "not a mirror"
    assert linked.is_symlink() and (elsewhere / "HEAD").is_file()
    assert _git("--git-dir", str(mirrors["shared"]), "rev-parse", "main").strip()
    with database.read() as s:
        audit = s.scalars(select(AuditEntry).where(AuditEntry.action == "retention.prune")).one()
    assert audit.actor == "system" and audit.detail["mirrors"] == 3

    # the deploy ends, the fetch is over: both go on the next run; the shared one stays
    with database.transaction() as s:
        s.execute(update(Deploy).where(Deploy.project_id == moved).values(status="success"))
    again = retention.run(database, settings)

    assert again.mirrors == 2
    assert {name for name, path in mirrors.items() if path.exists()} == {"shared"}


def test_a_mirror_a_queued_deploy_names_stays_though_its_project_changed_repository(
    database, home_settings, origin
):
    settings = home_settings
    default = _space_id(database, "default")
    shop = _project(database, "shop", _url("first"))
    first = _mirror(settings, origin, _url("first"), default)
    with database.transaction() as s:
        project = s.get(Project, shop)
        assert project is not None
        config = dump_project(parse_project(dict(project.config)))
        s.add(Deploy(project_id=shop, env="production", status="queued", config=config))
    _project(database, "shop", _url("second"))

    assert retention.sweep_mirrors(database, settings.repo_cache) == 0
    assert (first / "HEAD").is_file()
