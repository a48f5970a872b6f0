"""Review (session 8): an environment's ``log_retention:`` (project YAML, written by the
space's masters) wins over the server's ``FERRYMAN_LOG_RETENTION`` both ways — and is left
out of the approval digest. So where the operator keeps every log (the default, ``off``: a
record of every command that ran as root on the fleet), a master of one space sets
``log_retention: 1d`` and, a day later, the worker deletes the command records and output
of that environment's deploys, their own included; no approval is asked for the change.
Shortening what the operator keeps is the operator's (a superuser's) to decide, as raising a
space's limits is (``space.policy``).

No fleet: deploys are recorded as the worker records them, with their log lines and command
records, and one retention run (``services/retention.run``) is made as of three days later."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from ferryman.config.project import parse_project
from ferryman.db.clock import db_now
from ferryman.db.models import Deploy, DeployStep, LogLine, Project
from ferryman.services import projects, retention
from tests.api.world import World, build_world, fresh


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield build_world(tmp_path_factory.mktemp("review8-retention"))


def _ended_deploy(w: World, name: str) -> int:
    with w.db.transaction() as s:
        project = s.scalars(select(Project).where(Project.name == name)).one()
        now = db_now(s)
        deploy = Deploy(
            project_id=project.id,
            env="production",
            kind="deploy",
            ref="v1",
            status="success",
            config=project.config,
            started_at=now,
            finished_at=now,
        )
        s.add(deploy)
        s.flush()
        s.add(LogLine(deploy_id=deploy.id, ts=now, text="hook: curl … | sh"))
        s.add(
            DeployStep(
                deploy_id=deploy.id,
                host="127.0.0.1:1",
                stage="post_release",
                command="curl http://127.0.0.1:9/x | sh",
                exit_status=0,
                started_at=now,
            )
        )
        return int(deploy.id)


def _kept(w: World, deploy_id: int) -> tuple[int, int]:
    with w.db.read() as s:
        lines = s.scalar(select(func.count()).where(LogLine.deploy_id == deploy_id))
        steps = s.scalar(select(func.count()).where(DeployStep.deploy_id == deploy_id))
        return int(lines or 0), int(steps or 0)


def test_a_masters_log_retention_does_not_shorten_what_the_operator_keeps(world):
    w = world
    assert w.settings.log_retention is None  # the operator keeps every log
    name = fresh("erase")
    data = w.config(name)
    data["environments"]["production"]["log_retention"] = "1d"
    projects.apply_project(w.db, w.actors["master"], parse_project(data))  # a space master
    old = _ended_deploy(w, name)
    _ended_deploy(w, name)  # a newer one: the old one is neither the newest nor served
    assert _kept(w, old) == (1, 1)
    with w.db.read() as s:
        later = db_now(s) + timedelta(days=3)
    retention.run(w.db, w.settings, now=later)
    assert _kept(w, old) == (1, 1), "the command records of the old deploy were deleted"
