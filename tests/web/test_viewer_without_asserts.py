"""Pages know their viewer is signed in by its type (``signed_in`` returns a ``Viewer``,
whose actor is always someone), not by ``assert``: an anonymous browser is still sent to
sign in from every page and form, a route naming an action outside the permissions table
is refused when it is declared, and a failure banner with no recorded error is no banner."""

from __future__ import annotations

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from ferryman.api.deps import perm, websocket_route
from ferryman.app import create_app
from ferryman.errors import InternalError
from ferryman.web.failure import failure
from tests.api.world import SPACE, World, build_world
from tests.web.test_pages import browser


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("viewer"))


def test_an_anonymous_browser_is_sent_to_sign_in_from_pages_and_forms(world):
    client = TestClient(create_app(world.settings, world.db, embedded_worker=False))
    for url in (f"/s/{SPACE}/", f"/s/{SPACE}/projects", "/account", "/spaces/switch?space=x"):
        asked = client.get(url, follow_redirects=False)
        assert asked.status_code == 303, url
        assert asked.headers["location"].startswith("/login?next="), url
    form = {"csrf": "x", "username": "someone", "role": "developer"}
    for url in (f"/s/{SPACE}/projects", f"/s/{SPACE}/members", "/logout"):
        posted = client.post(url, data=form, follow_redirects=False)
        assert posted.status_code == 303, url
        assert posted.headers["location"].startswith("/login?next="), url


def test_switching_to_a_space_goes_to_its_dashboard_and_an_unknown_one_is_not_found(world):
    master = browser(world, "master")
    went = master.get(f"/spaces/switch?space={SPACE}", follow_redirects=False)
    assert went.status_code == 303 and went.headers["location"] == f"/s/{SPACE}/"
    assert master.get("/spaces/switch?space=nowhere-y").status_code == 404


def test_a_route_naming_an_action_outside_the_permissions_table_is_refused():
    assert perm("project.read") == {"x-permission": "project.read"}
    with pytest.raises(InternalError, match=r"unknown action 'project\.nope'"):
        perm("project.nope")
    with pytest.raises(InternalError, match=r"unknown action 'deploy\.nope'"):
        websocket_route(APIRouter(), "/x", "deploy.nope")


def test_a_failed_deploy_that_recorded_no_error_shows_no_failure_banner():
    assert failure({"status": "failed", "error": None}, str) is None
    assert failure({"status": "failed", "error": "text"}, str) is None
    assert failure({"status": "running", "error": {"message": "x"}}, str) is None
    shown = failure({"status": "failed", "error": {"code": "remote_failed", "message": "m"}}, str)
    assert shown is not None and shown["code"] == "remote_failed" and shown["message"] == "m"
    gray = failure({"status": "success", "hosts": [{"host": "h1", "status": "failed"}]}, str)
    assert gray is not None and gray["failed_hosts"] == [{"host": "h1", "error": ""}]
