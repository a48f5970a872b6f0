"""A worker starting tidies the workspaces runs on this machine left when they died, and
never one a running deploy still builds in."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from ferryman.db.models import Deploy
from ferryman.jobs.housekeeping import sweep_workspaces
from tests.api.world import World, build_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("housekeeping"))


def test_a_starting_worker_removes_the_workspaces_of_deploys_that_are_not_running(world):
    ended, running = world.queued_deploy(), world.queued_deploy()
    with world.db.transaction() as s:
        s.execute(update(Deploy).where(Deploy.id == ended).values(status="failed"))
        s.execute(update(Deploy).where(Deploy.id == running).values(status="running"))
    root = world.settings.workspaces / "1"
    left = root / f"deploy-{ended}" / "src"
    busy = root / f"deploy-{running}" / "src"
    for path in (left, busy):
        path.mkdir(parents=True)
        (path / "built.txt").write_text("x")
    elsewhere = world.settings.home / "keep-me"
    elsewhere.mkdir()
    (root / "not-a-workspace").symlink_to(elsewhere)

    assert sweep_workspaces(world.db, world.settings) == 1

    assert not left.parent.exists()
    assert (busy / "built.txt").exists()
    assert elsewhere.exists() and (root / "not-a-workspace").is_symlink()
