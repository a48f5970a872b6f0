"""Review (session 8): post-deploy watches (``services/watch.py``) of a space that was
disabled.

A superuser disables a space: its webhooks and agents are refused like unknown ones, nobody
reads it, nothing of it should run. Its post-deploy watches went on: a worker claimed them,
opened SSH connections to its hosts with its key every ``every`` seconds, and a failing check
queued a rollback by the system actor — a deploy in a space nobody may act in any more.

No fleet: the watch is started as a successful deploy's outcome starts it, and what the
worker's round calls (``claim_due``) is asked whether it hands the watch out."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select, update

from ferryman.config.project import parse_project
from ferryman.db.clock import db_now
from ferryman.db.models import Deploy, DeployWatch, Project, Space
from ferryman.services import projects, spaces, watch
from ferryman.services.audit import SYSTEM
from tests.api.world import World, build_world, fresh


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield build_world(tmp_path_factory.mktemp("review8-watch"))


def _watched_success(w: World, space: str) -> int:
    """A project of ``space`` whose staging is watched, and a staging deploy that succeeded
    with the watch its success starts, due now."""
    name = fresh("watched")
    data = w.config(name, space)
    data["environments"]["staging"]["health_check"] = [{"command": "true"}]
    data["environments"]["staging"]["watch"] = {"window": "10m", "every": 1}
    projects.apply_project(w.db, SYSTEM, parse_project(data))
    with w.db.transaction() as s:
        project = s.scalars(select(Project).where(Project.name == name)).one()
        deploy = Deploy(
            project_id=project.id,
            env="staging",
            kind="deploy",
            ref="v1",
            status="success",
            config=project.config,
            hosts=["127.0.0.2:1"],
            release_name=f"r-{fresh('rel')}",
        )
        s.add(deploy)
        s.flush()
        assert watch.start_for(s, deploy) is not None
        s.flush()
        s.execute(
            update(DeployWatch)
            .where(DeployWatch.deploy_id == deploy.id)
            .values(next_check_at=db_now(s))
        )
        return int(deploy.id)


def _claimed(w: World, deploy_id: int) -> list[watch.Claimed]:
    return [c for c in watch.claim_due(w.db, "review8", 60.0) if c.deploy_id == deploy_id]


def test_a_disabled_spaces_watch_is_not_handed_to_a_worker(world):
    w = world
    space = fresh("team")
    spaces.create_space(w.db, SYSTEM, space)
    with w.db.transaction() as s:  # the world's repository is a local path
        s.execute(update(Space).where(Space.name == space).values(allow_local_repos=True))
    deploy_id = _watched_success(w, space)
    spaces.update_space(w.db, SYSTEM, space, is_active=False)
    assert _claimed(w, deploy_id) == []
    with w.db.read() as s:
        lease = s.scalar(select(DeployWatch.lease_until).where(DeployWatch.deploy_id == deploy_id))
    assert lease is None  # nobody holds it: no round runs against the disabled space's hosts


def test_an_active_spaces_watch_is_handed_out_once(world):
    """The control: the same watch in an active space is claimed, by one claim only."""
    w = world
    deploy_id = _watched_success(w, "other")
    assert len(_claimed(w, deploy_id)) == 1
    assert _claimed(w, deploy_id) == []  # its lease holds
