"""Listings of migrations (migration 0016) on SQLite, PostgreSQL and MariaDB: written only by
the worker that holds the deploy, read back in order with their marks, and what a rollback to
an older release crosses computed from them — the same on every backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ferryman.commands.migrations import parse
from ferryman.config.project import parse_project
from ferryman.db.session import Database
from ferryman.errors import OwnershipLost
from ferryman.services import deploys, migrations, projects
from tests.conftest import NET, set_approval
from tests.helpers import ADMIN
from tests.jobs.claiming import Claimer


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database(db_url)
    db.upgrade()
    set_approval(db, "production", False)
    yield db
    db.dispose()


def _claimed_deploy(db: Database) -> tuple[int, int, str]:
    config = {
        "project": "shop",
        "repo": f"ssh://git@{NET}.96/shop.git",  # never reached: nothing runs
        "environments": {
            "production": {
                "hosts": ["10.0.0.1"],
                "webroot": "/srv/www/shop",
                "releases": "/srv/releases/shop",
                "migrations": {"command": "bin/migrations"},
            }
        },
    }
    projects.apply_project(db, ADMIN, parse_project(config))
    requested = deploys.request_deploy(db, ADMIN, "shop", "production", "main")
    worker_a = Claimer(db, "worker-a")
    assert worker_a.claim_next() == requested.id
    return requested.project_id, requested.id, worker_a.holder(requested.id)


def test_listings_are_written_by_the_holder_and_give_the_same_crossing_everywhere(database):
    project_id, deploy_id, holder = _claimed_deploy(database)
    a, b = "20240101-000000_main_aaaaaaa", "20240102-000000_main_bbbbbbb"
    migrations.save_listing(
        database, project_id, "production", deploy_id, a, parse("m1 reversible\n"), "", holder
    )
    with pytest.raises(OwnershipLost):
        migrations.save_listing(
            database, project_id, "production", deploy_id, b, None, "exit 1", "worker-b"
        )
    two = parse("m1 reversible\nm2_drop irreversible\nm3 reversible\n")
    migrations.save_listing(database, project_id, "production", deploy_id, b, two, "", holder)

    with database.read() as s:
        found = migrations.listings(s, project_id, "production")
        cross = migrations.crossing(s, project_id, "production", a)
    assert [(x.release, x.ok, x.applied) for x in found] == [
        (a, True, (("m1", True),)),
        (b, True, (("m1", True), ("m2_drop", False), ("m3", True))),
    ]
    assert cross.crossed == [("m2_drop", False), ("m3", True)]
    assert cross.irreversible == ["m2_drop"] and cross.blocked
