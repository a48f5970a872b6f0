"""The checks facade (``services/checks.py``): the one way pages and routes reach hosts outside a
deploy — the servers page's SSH check, ``ferryman check`` and ``releases --verify``. Each
authorises the actor, answers what it found, and closes what it opened."""

from __future__ import annotations

import asyncio

import pytest

from ferryman.errors import FerrymanError
from ferryman.services import audit_views, checks, inventory, projects
from ferryman.services.audit import SYSTEM
from tests.api.world import SPACE, World, build_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("checks"))


def _server(world: World, name: str, address: str, port: int) -> int:
    return int(inventory.create_server(world.db, SYSTEM, SPACE, name, address, port=port)["id"])


def test_a_server_nothing_answers_on_is_unreachable_naming_the_refusal(world):
    server_id = _server(world, "closed", "127.0.0.1", 1)
    found = asyncio.run(checks.server(world.db, world.settings, world.actors["master"], server_id))
    assert found == checks.ServerCheck(
        ok=False,
        user="root",
        message="cannot connect: [Errno 111] Connect call failed ('127.0.0.1', 1)",
        cause="unreachable",
    )


def test_a_server_check_is_refused_to_someone_outside_its_space(world):
    server_id = _server(world, "hidden", "127.0.0.1", 1)
    with pytest.raises(FerrymanError) as refused:
        asyncio.run(checks.server(world.db, world.settings, world.actors["other"], server_id))
    assert refused.value.http_status == 404


def test_a_server_whose_host_key_is_unknown_is_named_a_host_key_problem(world, targets):
    host = targets[0]
    server_id = _server(world, "unknown-key", host.address, 22)
    found = asyncio.run(checks.server(world.db, world.settings, world.actors["master"], server_id))
    assert (found.ok, found.cause) == (False, "host_key")
    assert "host key" in found.message


def test_a_project_check_names_each_host_and_the_repository_and_is_audited(world):
    actor = world.actors["master"]
    answer = asyncio.run(
        checks.project(world.db, world.settings, actor, str(world.project_id), "staging")
    )
    assert answer["project"] == "site"
    assert answer["env"] == "staging"
    assert answer["ok"] is False
    by_check = {(c["host"], c["check"]): c for c in answer["checks"]}
    assert by_check[("deploy host", "repository reachable")]["ok"] is True
    ssh = by_check[("127.0.0.2:1", "ssh reachable, host key known")]
    assert ssh["ok"] is False
    assert "Connect call failed ('127.0.0.2', 1)" in ssh["detail"]
    detected = audit_views.read_audit(
        world.db, actor, space=SPACE, who=actor.username, action="project.detect"
    )
    assert [row["target"] for row in detected] == ["project:site/staging"]


def test_a_project_check_needs_the_detect_right(world):
    with pytest.raises(FerrymanError) as refused:
        asyncio.run(
            checks.project(
                world.db,
                world.settings,
                world.actors["reporter"],
                str(world.project_id),
                "staging",
            )
        )
    assert refused.value.http_status in (403, 404)


def test_verifying_releases_on_a_host_that_cannot_be_reached_is_drift_naming_why(world):
    found, config = projects.project_config(
        world.db, world.actors["master"], str(world.project_id), "project.read"
    )
    seen = asyncio.run(
        checks.releases(
            world.db,
            world.settings,
            found.space_id,
            config,
            "staging",
            {"127.0.0.2:1": "rel"},
            {"127.0.0.2:1": ["rel"]},
        )
    )
    assert list(seen) == ["127.0.0.2:1"]
    assert seen["127.0.0.2:1"]["actual"] is None
    assert seen["127.0.0.2:1"]["drift"].startswith("unreachable: cannot connect")
