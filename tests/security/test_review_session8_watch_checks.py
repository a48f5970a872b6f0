"""Review (session 8): a post-deploy watch runs "the same checks as after the switch"
(``jobs/watch_job.py``) — but not with the same variables. The check after the switch sees
the deploy's variables: ``$VERSION``, ``$RELEASE``, ``$COMMIT``, the project's variables and
secrets. The watch builds its context from the config snapshot alone, so every one of them
is empty there. A check that reads any of them passes after the switch and fails in the
watch's first round: the good release is marked bad, the space is told the deploy failed,
and with ``on_failure: rollback`` the system rolls a healthy production back.

On the real fleet: a check ``test -n "$VERSION"`` (the release this host should serve is
named), two good deploys, one watch round, and the hosts' webroot links afterwards."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select, update

from ferryman.db.clock import db_now
from ferryman.db.models import DeployWatch, Release
from ferryman.db.session import Database
from ferryman.jobs import watch_job
from ferryman.services import watch
from tests.helpers import Repo, apply, deploy, finish, live, project_config, unique

pytestmark = pytest.mark.fleet


def _watch(db: Database, deploy_id: int) -> DeployWatch:
    with db.read() as s:
        row = s.scalars(select(DeployWatch).where(DeployWatch.deploy_id == deploy_id)).one()
        s.expunge(row)
        return row


def test_a_health_check_that_reads_the_deploys_variables_passes_in_the_watch_too(
    db, settings, git_host, targets, tmp_path: Path
):
    hosts = targets[:1]
    repo = Repo(git_host, tmp_path, unique("watchvars"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(
        db,
        project_config(
            repo.name,
            repo.url,
            hosts,
            health_check=[{"command": 'test -n "$VERSION"', "retries": 1, "timeout": "10s"}],
            watch={"window": "1h", "every": "1s", "on_failure": "rollback"},
        ),
    )
    first = deploy(db, settings, repo.name, "v1")
    assert first["status"] == "success", first["error"]
    repo.commit({"index.html": "v2\n"}, tag="v2")
    second = deploy(db, settings, repo.name, "v2")
    assert second["status"] == "success", second["error"]  # the check passed after the switch
    assert live(hosts[0], repo.name) == second["release"]

    with db.transaction() as s:  # its first round is due now
        s.execute(
            update(DeployWatch)
            .where(DeployWatch.deploy_id == second["id"])
            .values(next_check_at=db_now(s))
        )
    assert asyncio.run(watch_job.tick(db, settings, "review8")) == 1
    row = _watch(db, second["id"])
    if row.rollback_id is not None:  # what the worker would run next: run it
        finish(db, settings, row.rollback_id)
    # the same check, on the same healthy host: the watch goes on, nothing is rolled back
    assert live(hosts[0], repo.name) == second["release"], f"rolled back: {row.reason}"
    assert row.status == watch.WATCHING, row.reason
    with db.read() as s:
        bad = s.scalars(select(Release.bad).where(Release.name == second["release"])).all()
    assert bad == [False]
