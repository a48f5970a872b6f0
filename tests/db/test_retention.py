"""FERRYMAN_LOG_RETENTION on SQLite, PostgreSQL and MariaDB: the pruning job removes the log
lines and command records of deploys that ended before the retention — in small batches, and
harmlessly when two workers prune at once — and never those of a running deploy, the newest
deploy of a project environment, or one a host still serves; every deploy, ticket and audit
row stays. The artifacts nothing can use any more (pull packages, kept builds, parked trees of
deleted projects and environments) go with them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from ferryman.config.project import parse_project
from ferryman.config.settings import Settings, load_settings
from ferryman.db.models import (
    AuditEntry,
    Deploy,
    DeployStep,
    HostState,
    LogLine,
    Project,
    Ticket,
    utcnow,
)
from ferryman.db.session import Database
from ferryman.errors import ConfigError
from ferryman.pipeline.parked_trees import slot_name
from ferryman.services import project_deletion, projects, retention
from ferryman.services.audit import SYSTEM, record
from tests.conftest import NET
from tests.helpers import ADMIN

LINES = 7  # per deploy; pruned 3 at a time
KEEP = timedelta(days=180)


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database(db_url)
    db.upgrade()
    yield db
    db.dispose()


@pytest.fixture
def home_settings(db_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        {
            "FERRYMAN_HOME": str(tmp_path / "home"),
            "FERRYMAN_DATABASE_URL": db_url,
            "FERRYMAN_LOG_RETENTION": "180d",
        }
    )


def _project(
    db: Database, name: str, envs: tuple[str, ...], own: dict[str, str] | None = None
) -> int:
    """A project with these environments; ``own``: an environment's ``log_retention:``."""
    config = {
        "project": name,
        "repo": f"ssh://git@{NET}.96/{name}.git",  # never reached: nothing runs
        "environments": {
            env: {
                "hosts": [f"{NET}.90"],
                "webroot": f"/srv/www/{name}-{env}",
                "releases": f"/srv/releases/{name}-{env}",
                **({"log_retention": (own or {})[env]} if env in (own or {}) else {}),
            }
            for env in envs
        },
    }
    projects.apply_project(db, ADMIN, parse_project(config))
    with db.read() as s:
        return int(s.scalar(select(Project.id).where(Project.name == name)) or 0)


def _deploy(db: Database, project_id: int, env: str, status: str, days_ago: int) -> int:
    """A deploy that ended (or, running, started) ``days_ago``, with its log, two command
    records, a ticket and an audit row."""
    when = utcnow() - timedelta(days=days_ago)
    with db.transaction() as s:
        deploy = Deploy(
            project_id=project_id,
            env=env,
            status=status,
            config={},
            created_at=when - timedelta(minutes=1),
            started_at=when - timedelta(minutes=1),
            finished_at=None if status == "running" else when,
        )
        s.add(deploy)
        s.flush()
        s.add_all(LogLine(deploy_id=deploy.id, text=f"line {i}", ts=when) for i in range(LINES))
        s.add_all(
            DeployStep(deploy_id=deploy.id, stage="release", command="true", started_at=when)
            for _ in range(2)
        )
        s.add(
            Ticket(
                space_id=1,
                project_id=project_id,
                env=env,
                title="t",
                status="succeeded",
                deploy_id=deploy.id,
            )
        )
        record(s, SYSTEM, f"deploy.{status}", f"deploy:{deploy.id}", project_id=project_id)
        return deploy.id


def _lines(db: Database) -> dict[int, list[str]]:
    with db.read() as s:
        rows = s.execute(select(LogLine.deploy_id, LogLine.text).order_by(LogLine.id)).all()
    found: dict[int, list[str]] = {}
    for deploy_id, text in rows:
        found.setdefault(deploy_id, []).append(text)
    return found


@pytest.fixture
def history(database: Database) -> dict[str, int]:
    """shop/production: deploys 400, 300, 250 (a host serves it), 300 (still running), 200
    and 10 days old; shop/staging: one deploy, 400 days old (the newest there)."""
    shop = _project(database, "shop", ("production", "staging"))
    made = {
        "old": _deploy(database, shop, "production", "success", 400),
        "failed": _deploy(database, shop, "production", "failed", 300),
        "live": _deploy(database, shop, "production", "success", 250),
        "running": _deploy(database, shop, "production", "running", 300),
        "older": _deploy(database, shop, "production", "cancelled", 200),
        "newest": _deploy(database, shop, "production", "success", 10),
        "staging": _deploy(database, shop, "staging", "success", 400),
    }
    with database.transaction() as s:
        s.add(
            HostState(project_id=shop, env="production", host=f"{NET}.90", deploy_id=made["live"])
        )
    return made


def test_pruning_removes_old_logs_and_keeps_running_newest_and_served_deploys(database, history):
    with database.read() as s:
        audit_before = s.scalar(select(func.count()).select_from(AuditEntry))

    done = retention.prune_logs(database, KEEP, batch=3)

    pruned = {history["old"], history["failed"], history["older"]}
    assert (done.deploys, done.lines, done.steps) == (3, 3 * LINES, 3 * 2)
    lines = _lines(database)
    for deploy_id in pruned:
        assert len(lines[deploy_id]) == 1
        assert "removed" in lines[deploy_id][0] and "180 days" in lines[deploy_id][0]
    for name in ("live", "running", "newest", "staging"):
        assert lines[history[name]] == [f"line {i}" for i in range(LINES)], name
    with database.read() as s:
        assert set(s.scalars(select(Deploy.id).where(Deploy.logs_pruned_at.is_not(None)))) == (
            pruned
        )
        assert set(s.scalars(select(DeployStep.deploy_id))) == set(history.values()) - pruned
        # every deploy, ticket and audit row stays
        assert set(s.scalars(select(Deploy.id))) == set(history.values())
        assert s.scalar(select(func.count()).select_from(Ticket)) == len(history)
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == audit_before

    again = retention.prune_logs(database, KEEP, batch=3)
    assert (again.deploys, again.lines, again.steps) == (0, 0, 0)
    assert _lines(database) == lines


def test_two_workers_pruning_at_once_leave_one_note_per_deploy(database, history):
    results: list[retention.Pruned] = []
    failures: list[BaseException] = []

    def prune() -> None:
        try:
            results.append(retention.prune_logs(database, KEEP, batch=2))
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=prune) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert sum(r.deploys for r in results) == 3
    assert sum(r.lines for r in results) == 3 * LINES
    lines = _lines(database)
    for name in ("old", "failed", "older"):
        assert len(lines[history[name]]) == 1
        assert lines[history[name]][0].startswith("The log of this deploy was removed")
    for name in ("live", "running", "newest", "staging"):
        assert len(lines[history[name]]) == LINES


def test_a_run_is_claimed_by_one_worker_an_hour(database):
    assert retention.claim_run(database)
    assert not retention.claim_run(database)
    assert retention.claim_run(database, every=timedelta(0)) is False  # the hour is not over


def test_a_run_prunes_artifacts_nobody_can_use_and_writes_one_audit_row(
    database, history, home_settings
):
    home = home_settings.home
    gone_project = _project(database, "gone", ("production",))
    shop = history["newest"]
    with database.read() as s:
        shop_id = int(s.scalar(select(Deploy.project_id).where(Deploy.id == shop)) or 0)
    dirs = {
        "pruned artifact": home / "artifacts" / f"deploy-{history['old']}",
        "newest artifact": home / "artifacts" / f"deploy-{history['newest']}",
        "unknown artifact": home / "artifacts" / "deploy-999999",
        "pruned build": home / "builds" / f"deploy-{history['failed']}",
        "running build": home / "builds" / f"deploy-{history['running']}",
        "tree": home / "trees" / "1" / slot_name(shop_id, "production"),
        "tree of a removed env": home / "trees" / "1" / slot_name(shop_id, "qa"),
        "tree of a deleted project": home / "trees" / "1" / slot_name(gone_project, "production"),
    }
    for path in dirs.values():
        (path / "tree").mkdir(parents=True)
        (path / "tree" / "index.html").write_text("x")
    elsewhere = home / "keep-me"
    elsewhere.mkdir()
    (home / "trees" / "1" / slot_name(gone_project, "staging")).symlink_to(elsewhere)
    project_deletion.delete_project(database, ADMIN, "gone")

    done = retention.run(database, home_settings)

    kept = {name for name, path in dirs.items() if path.exists()}
    # shop has a deploy running: none of its trees is touched until it ends
    assert kept == {"newest artifact", "running build", "tree", "tree of a removed env"}
    assert (done.deploys, done.artifacts, done.builds, done.trees) == (3, 2, 1, 1)
    assert elsewhere.is_dir()
    with database.transaction() as s:
        s.execute(update(Deploy).where(Deploy.id == history["running"]).values(status="failed"))

    assert retention.run(database, home_settings).trees == 1
    assert not dirs["tree of a removed env"].exists() and dirs["tree"].is_dir()
    with database.read() as s:
        rows = list(s.scalars(select(AuditEntry).where(AuditEntry.action == "retention.prune")))
    assert len(rows) == 2
    assert rows[0].actor == "system"
    assert rows[0].detail["deploys"] == 3 and rows[0].detail["retention_days"] == 180


def test_an_environment_keeps_its_logs_longer_than_the_server_but_never_shorter(
    database, home_settings
):
    """The server keeps 180 days; ``log_retention: off`` in production keeps everything,
    ``400d`` in staging keeps a 200-day-old log, and ``30d`` in test cannot go under the
    server's 180 days (the operator's floor)."""
    shop = _project(
        database,
        "keepers",
        ("production", "staging", "test"),
        {"production": "off", "staging": "400d", "test": "30d"},
    )
    made = {
        "production_old": _deploy(database, shop, "production", "success", 400),
        "production_new": _deploy(database, shop, "production", "success", 1),
        "staging_old": _deploy(database, shop, "staging", "success", 500),
        "staging_kept": _deploy(database, shop, "staging", "success", 200),
        "staging_new": _deploy(database, shop, "staging", "success", 1),
        "test_old": _deploy(database, shop, "test", "failed", 200),
        "test_month": _deploy(database, shop, "test", "success", 60),
        "test_new": _deploy(database, shop, "test", "success", 1),
    }

    done = retention.run(database, home_settings)

    lines = _lines(database)
    assert done.deploys == 2  # staging_old by its own 400 days, test_old by the server's
    assert len(lines[made["staging_old"]]) == 1
    assert lines[made["staging_old"]][0].endswith("400 days ago (log_retention).")
    assert len(lines[made["test_old"]]) == 1
    assert lines[made["test_old"]][0].endswith("180 days ago (log_retention).")
    for name in ("production_old", "production_new", "staging_kept", "staging_new"):
        assert len(lines[made[name]]) == LINES, name
    for name in ("test_month", "test_new"):
        assert len(lines[made[name]]) == LINES, name


def test_an_environment_cannot_set_a_log_retention_under_a_day():
    base = {
        "project": "short",
        "repo": f"ssh://git@{NET}.96/short.git",
        "environments": {
            "production": {
                "hosts": [f"{NET}.90"],
                "webroot": "/srv/www/short",
                "releases": "/srv/releases/short",
                "log_retention": "12h",
            }
        },
    }
    with pytest.raises(ConfigError, match="log_retention: 180d, 26w, 72h or off"):
        parse_project(base)
