"""Review (session 8): the promotion gate (``requires_passed``) and the post-deploy watch.

A deploy of a commit succeeds in staging; its watch (``watch:``) then finds the release
broken — a health check fails — marks the release bad, notifies, maybe rolls staging back.
The gate still counted that deploy as the commit having passed staging: a developer could
deploy (or promote a ticket of) the very commit the watch had just failed, to production.
A deploy whose watch failed now passes nothing.

No fleet: the staging deploy is recorded as the worker records its outcome, its watch is
started, claimed and failed through ``services/watch.py`` (what the worker's round calls),
and the gate reads those records."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from ferryman.config.project import parse_project
from ferryman.db.models import Deploy, DeployWatch, Project, Release
from ferryman.errors import Conflict
from ferryman.services import deploys, projects, watch
from ferryman.services.audit import SYSTEM
from tests.api.world import World, build_world, fresh


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield build_world(tmp_path_factory.mktemp("review8-promotion"))


def _commit(w: World) -> str:
    return subprocess.run(
        ["git", "rev-parse", "v1^{commit}"],
        cwd=w.repo_url.removeprefix("file://"),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def _gated(w: World) -> str:
    """production takes only what passed staging; staging is watched after each deploy."""
    name = fresh("watched")
    data = w.config(name)
    data["environments"]["production"]["requires_passed"] = "staging"
    data["environments"]["staging"]["health_check"] = [{"command": "true"}]
    data["environments"]["staging"]["watch"] = {"window": "10m", "every": 1}
    projects.apply_project(w.db, SYSTEM, parse_project(data))
    return name


def _staging_success(w: World, name: str, commit: str) -> int:
    """A staging deploy of ``commit`` that succeeded, recorded with the watch its success
    starts (as the worker's outcome does), and a release row on its host."""
    with w.db.transaction() as s:
        project = s.scalars(select(Project).where(Project.name == name)).one()
        deploy = Deploy(
            project_id=project.id,
            env="staging",
            kind="deploy",
            ref="v1",
            commit=commit,
            status="success",
            config=project.config,
            hosts=["127.0.0.2:1"],
            release_name=f"r-{fresh('rel')}",
        )
        s.add(deploy)
        s.flush()
        s.add(
            Release(
                project_id=project.id,
                env="staging",
                host="127.0.0.2:1",
                name=deploy.release_name,
                deploy_id=deploy.id,
            )
        )
        assert watch.start_for(s, deploy) is not None
        return int(deploy.id)


def _fail_its_watch(w: World, deploy_id: int) -> None:
    """The worker's round: claim the watch (its due time moved to now), find a host failing."""
    from sqlalchemy import update

    from ferryman.db.clock import db_now

    with w.db.transaction() as s:
        s.execute(
            update(DeployWatch)
            .where(DeployWatch.deploy_id == deploy_id)
            .values(next_check_at=db_now(s))
        )
    claimed = [c for c in watch.claim_due(w.db, "review8", 60.0) if c.deploy_id == deploy_id]
    assert len(claimed) == 1
    verdict = watch.record_failure(
        w.db, claimed[0].watch_id, claimed[0].holder, "127.0.0.2:1", "503 Service Unavailable"
    )
    assert verdict == watch.FAILED


def _to_production(w: World, name: str, commit: str, actor=SYSTEM) -> int:
    with w.db.transaction() as s:
        project = s.scalars(select(Project).where(Project.name == name)).one()
        made = deploys.create_deploy(
            s, actor, project, "production", kind="deploy", ref="v1", commit=commit
        )
        return int(made.id)


def _production_deploys(w: World, name: str) -> int:
    with w.db.read() as s:
        return len(
            s.scalars(
                select(Deploy.id)
                .join(Project, Project.id == Deploy.project_id)
                .where(Project.name == name, Deploy.env == "production")
            ).all()
        )


def test_a_commit_whose_staging_watch_failed_has_not_passed_staging(world):
    w = world
    name, commit = _gated(w), _commit(w)
    deploy_id = _staging_success(w, name, commit)
    _fail_its_watch(w, deploy_id)
    with w.db.read() as s:
        bad = s.scalars(select(Release.bad).where(Release.deploy_id == deploy_id)).all()
    assert bad == [True]  # the watch found the release broken
    with pytest.raises(Conflict) as refused:
        _to_production(w, name, commit)
    assert "to pass staging first" in refused.value.message
    assert _production_deploys(w, name) == 0


def test_a_commit_deployed_to_staging_again_and_healthy_passes(world):
    """The control: a later staging deploy of the same commit whose watch did not fail
    passes it (the gate reads the newest passing deploy, not only the newest deploy)."""
    w = world
    name, commit = _gated(w), _commit(w)
    _fail_its_watch(w, _staging_success(w, name, commit))
    _staging_success(w, name, commit)  # shipped again; its watch is still watching
    assert _to_production(w, name, commit) > 0
    assert _production_deploys(w, name) == 1


def test_a_deploy_whose_watch_failed_is_not_promoted_to_a_ticket(world):
    """Without ``requires_passed`` the gate says nothing — but a promotion's ticket says the
    source deploy succeeded, and its approvers read that: a deploy its watch found broken
    is refused as a source, and no ticket is written."""
    import asyncio

    from ferryman.db.models import Ticket
    from ferryman.services import promotion

    w = world
    name = fresh("promo")
    data = w.config(name)
    data["environments"]["staging"]["health_check"] = [{"command": "true"}]
    data["environments"]["staging"]["watch"] = {"window": "10m", "every": 1}
    projects.apply_project(w.db, SYSTEM, parse_project(data))
    deploy_id = _staging_success(w, name, _commit(w))
    _fail_its_watch(w, deploy_id)
    with pytest.raises(Conflict) as refused:
        asyncio.run(
            promotion.promote(w.db, w.settings, w.actors["developer"], deploy_id, "production")
        )
    assert "watch" in refused.value.message
    with w.db.read() as s:
        made = s.scalars(
            select(Ticket.id)
            .join(Project, Project.id == Ticket.project_id)
            .where(Project.name == name, Ticket.env == "production")
        ).all()
    assert made == []
