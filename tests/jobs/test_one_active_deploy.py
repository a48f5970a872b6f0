"""One active deploy per project environment, held by the database on every backend: two
clients asking at the same instant get one deploy and one ``Conflict`` naming it."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, Table, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ferryman.config.project import parse_project
from ferryman.db.models import Deploy, HostState
from ferryman.db.session import MIGRATIONS, Database
from ferryman.errors import Conflict
from ferryman.services import deploys, projects
from ferryman.services.audit import SYSTEM

TRIALS = 50
_names = itertools.count(1)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    database.upgrade()
    yield database
    database.dispose()


def _project(db: Database) -> str:
    """A project no worker could deploy (nothing listens on its host, its repo is never
    fetched): requesting is all these tests do."""
    name = f"one{next(_names)}"
    env = {"hosts": ["127.0.0.1:1"], "webroot": f"/srv/www/{name}", "releases": "/srv/rel"}
    config = {
        "project": name,
        "repo": "ssh://git@127.0.0.1/x.git",
        "environments": {"staging": env},
    }
    projects.apply_project(db, SYSTEM, parse_project(config))
    return name


def _at_once(*requests: Callable[[], Deploy]) -> list[Deploy | Conflict]:
    """Run each request in its own thread (its own session), all released together."""
    barrier = threading.Barrier(len(requests))
    results: list[Deploy | Conflict | BaseException | None] = [None] * len(requests)

    def run(i: int, request: Callable[[], Deploy]) -> None:
        barrier.wait()
        try:
            results[i] = request()
        except BaseException as exc:  # reported by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, r)) for i, r in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for r in results:
        assert isinstance(r, Deploy | Conflict), f"neither a deploy nor a Conflict: {r!r}"
    return [r for r in results if isinstance(r, Deploy | Conflict)]


def _active(db: Database, name: str) -> list[tuple[int, str]]:
    with db.read() as s:
        project = projects.find_project(s, SYSTEM, name, "deploy.direct")
        rows = s.execute(
            select(Deploy.id, Deploy.status).where(
                Deploy.project_id == project.id, Deploy.status.in_(deploys.ACTIVE)
            )
        ).all()
    return [(int(i), str(st)) for i, st in rows]


def _one_won(results: list[Deploy | Conflict]) -> Deploy:
    won = [r for r in results if isinstance(r, Deploy)]
    lost = [r for r in results if isinstance(r, Conflict)]
    assert len(won) == 1 and len(lost) == len(results) - 1, results
    for conflict in lost:
        assert "is busy" in conflict.message and f"#{won[0].id} " in conflict.message
        assert conflict.details.get("deploy_id") == won[0].id
    return won[0]


def test_two_clients_asking_at_once_get_one_deploy_and_one_conflict_every_time(db: Database):
    name = _project(db)
    for _ in range(TRIALS):
        results = _at_once(
            lambda: deploys.request_deploy(db, SYSTEM, name, "staging", "v1"),
            lambda: deploys.request_deploy(db, SYSTEM, name, "staging", "v2"),
        )
        winner = _one_won(results)
        assert _active(db, name) == [(winner.id, "queued")]
        deploys.request_cancel(db, SYSTEM, winner.id)  # cancelled frees the environment
        assert _active(db, name) == []


def test_a_rollback_and_a_deploy_asked_at_once_one_wins(db: Database):
    name = _project(db)
    with db.transaction() as s:
        project = projects.find_project(s, SYSTEM, name, "deploy.direct")
        s.add(HostState(project_id=project.id, env="staging", host="127.0.0.1:1"))
    for _ in range(TRIALS // 2):
        winner = _one_won(
            _at_once(
                lambda: deploys.request_rollback(db, SYSTEM, name, "staging"),
                lambda: deploys.request_deploy(db, SYSTEM, name, "staging", "v1"),
            )
        )
        assert _active(db, name) == [(winner.id, "queued")]
        deploys.request_cancel(db, SYSTEM, winner.id)


def test_a_finished_or_failed_deploy_frees_the_environment_and_a_paused_one_holds_it(
    db: Database,
):
    name = _project(db)
    for outcome in ("success", "failed"):
        first = deploys.request_deploy(db, SYSTEM, name, "staging", "v1")
        with pytest.raises(Conflict, match=f"#{first.id} by system is queued"):
            deploys.request_deploy(db, SYSTEM, name, "staging", "v2")
        with db.transaction() as s:
            s.execute(update(Deploy).where(Deploy.id == first.id).values(status="paused"))
        with pytest.raises(Conflict, match=f"#{first.id} by system is paused"):
            deploys.request_deploy(db, SYSTEM, name, "staging", "v2")
        deploys.finish(db, first.id, outcome, None)
        with db.read() as s:
            assert s.scalar(select(Deploy.active_key).where(Deploy.id == first.id)) is None
        second = deploys.request_deploy(db, SYSTEM, name, "staging", "v2")
        deploys.request_cancel(db, SYSTEM, second.id)


def test_a_deploy_ended_by_a_path_that_kept_its_key_does_not_hold_the_environment(
    db: Database,
):
    """The unique key is the guard, and the guard repairs itself: a status written by a
    plain UPDATE that forgot ``active_key`` does not leave the environment busy forever."""
    name = _project(db)
    first = deploys.request_deploy(db, SYSTEM, name, "staging", "v1")
    with db.transaction() as s:
        s.execute(update(Deploy).where(Deploy.id == first.id).values(status="failed"))
    second = deploys.request_deploy(db, SYSTEM, name, "staging", "v2")
    with db.read() as s:
        keys = dict(s.execute(select(Deploy.id, Deploy.active_key)).all())
    assert keys[first.id] is None and keys[second.id] == second.active_key
    assert second.active_key == deploys.active_key(second.project_id, "staging")


def test_the_database_itself_refuses_a_second_active_deploy_of_one_environment(
    db: Database,
):
    name = _project(db)
    first = deploys.request_deploy(db, SYSTEM, name, "staging", "v1")
    with pytest.raises(IntegrityError), db.transaction() as s:
        s.add(
            Deploy(
                project_id=first.project_id,
                env="staging",
                config={},
                active_key=first.active_key,
            )
        )


def _project_at_0013(db: Database) -> int:
    """A project row in the 0013 schema, written as that schema's tables are (the models and
    services speak the newest schema: later columns would not be there)."""
    with db.engine.begin() as connection:
        meta = MetaData()
        spaces_t = Table("spaces", meta, autoload_with=connection)
        projects_t = Table("projects", meta, autoload_with=connection)
        space_id = connection.scalar(select(spaces_t.c.id).where(spaces_t.c.name == "default"))
        values: dict[str, object] = {"space_id": space_id, "name": f"one{next(_names)}"}
        for column in projects_t.columns:
            if column.name in values or column.primary_key or column.nullable:
                continue
            if column.server_default is not None:
                continue
            try:
                kind = column.type.python_type
            except NotImplementedError:
                kind = str
            if kind is datetime:
                values[column.name] = datetime.now(UTC).replace(tzinfo=None)
            elif kind is bool:
                values[column.name] = False
            elif kind is int:
                values[column.name] = 0
            elif kind is dict:
                values[column.name] = {}
            else:
                values[column.name] = "{}" if column.name == "config" else ""
        result = connection.execute(insert(projects_t).values(**values))
        key = result.inserted_primary_key
        assert key is not None, "the project INSERT returned no primary key"
        return int(key[0])


def test_the_migration_keys_the_oldest_active_deploy_of_an_environment(db_url: str):
    """An install that already has two active deploys of one environment (the race this
    closes) keeps running both; the oldest holds the key, the others none."""
    db = Database(db_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    with db.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0013")
    project_id = _project_at_0013(db)
    table = Deploy.__table__
    assert isinstance(table, Table)
    columns = {"project_id": project_id, "config": {}, "stages": [], "variables": {}}
    ids = []
    with db.engine.begin() as connection:
        for env, status in [
            ("staging", "success"),
            ("staging", "running"),
            ("staging", "queued"),
            ("production", "paused"),
        ]:
            result = connection.execute(
                insert(table).values(**columns, env=env, status=status)
            )  # the 0013 table: no active_key column yet, and none in this INSERT
            key = result.inserted_primary_key
            assert key is not None, f"the {env} deploy's INSERT returned no primary key"
            ids.append(int(key[0]))
    db.upgrade()
    with db.read() as s:
        keys = dict(s.execute(select(Deploy.id, Deploy.active_key)).all())
        assert s.scalar(select(func.count()).where(Deploy.active_key.is_not(None))) == 2
    assert keys == {
        ids[0]: None,
        ids[1]: f"{project_id}:staging",
        ids[2]: None,
        ids[3]: f"{project_id}:production",
    }
    db.dispose()
