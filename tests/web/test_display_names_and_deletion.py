"""The web UI shows display names in any script beside the ASCII names in addresses, and a
master deletes a project from its page: refused while it deploys, its records kept; anyone
else is refused."""

from __future__ import annotations

import html

import pytest
from fastapi.testclient import TestClient

from ferryman.config.project import parse_project
from ferryman.services import projects, spaces
from ferryman.services.audit import SYSTEM
from tests.api.world import SPACE, World, build_world, fresh
from tests.helpers import web_session

SHOWN = "兼容-测试-1.0"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("names"))


def _browser(world: World, role: str) -> tuple[TestClient, str]:
    return web_session(world.settings, world.db, world.actors[role].username)


def _project(world: World, display_name: str = "") -> str:
    config = world.config(fresh("named"))
    if display_name:
        config["display_name"] = display_name
    project, _ = projects.apply_project(world.db, SYSTEM, parse_project(config))
    return project.name


def test_display_names_are_shown_with_the_ascii_name_beside_them(world):
    name = _project(world, SHOWN)
    spaces.update_space(world.db, SYSTEM, SPACE, display_name="演示空间 <b>")
    client, _token = _browser(world, "reporter")
    listed = client.get(f"/s/{SPACE}/projects").text
    assert f'<a href="/s/{SPACE}/projects/{name}">{SHOWN}</a>' in listed
    assert f"<code>{name}</code>" in listed
    page = client.get(f"/s/{SPACE}/projects/{name}").text
    assert f"<h1>{SHOWN} <small><code>{name}</code>" in page
    dashboard = client.get(f"/s/{SPACE}/").text
    assert html.escape("演示空间 <b>") in dashboard and "演示空间 <b>" not in dashboard


def test_a_master_deletes_a_project_from_its_page_and_others_cannot(world):
    name = _project(world)
    developer, dev_token = _browser(world, "developer")
    assert 'id="delete-project"' not in developer.get(f"/s/{SPACE}/projects/{name}").text
    refused = developer.post(f"/s/{SPACE}/projects/{name}/delete", data={"csrf": dev_token})
    assert refused.status_code == 403

    master, token = _browser(world, "master")
    assert 'id="delete-project"' in master.get(f"/s/{SPACE}/projects/{name}").text
    gone = master.post(
        f"/s/{SPACE}/projects/{name}/delete", data={"csrf": token}, follow_redirects=False
    )
    assert gone.status_code == 303 and gone.headers["location"] == f"/s/{SPACE}/projects"
    assert f'/projects/{name}"' not in master.get(f"/s/{SPACE}/projects").text
    assert master.get(f"/s/{SPACE}/projects/{name}").status_code == 404


def test_a_project_with_a_queued_deploy_is_not_deleted_and_the_page_says_why(world):
    deploy_id = world.queued_deploy()
    from ferryman.services import deploy_views

    name = deploy_views.get(world.db, deploy_id)["project"]
    master, token = _browser(world, "master")
    kept = master.post(f"/s/{SPACE}/projects/{name}/delete", data={"csrf": token})
    assert kept.status_code == 200 and f"#{deploy_id}" in kept.text
    assert master.get(f"/s/{SPACE}/projects/{name}").status_code == 200
