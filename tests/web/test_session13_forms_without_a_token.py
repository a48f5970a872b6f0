"""A page's form posted without any CSRF field is refused like one with a wrong token: 403
and nothing changed — never a 422 that describes the form's other fields."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from ferryman.db.models import Ticket, UserGroup
from ferryman.domain import display_name
from tests.api.world import SPACE, World, build_world
from tests.web.test_pages import browser, csrf_of


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("tokenless"))


def _status(world: World, ticket: int) -> str:
    with world.db.read() as s:
        found = s.get(Ticket, ticket)
        assert found is not None
        return str(found.status)


def _groups(world: World) -> int:
    with world.db.read() as s:
        return s.scalar(select(func.count()).select_from(UserGroup)) or 0


def test_an_approval_posted_without_a_csrf_field_is_refused_and_the_ticket_stays_pending(world):
    ticket = int(world.new_ticket())
    before = _status(world, ticket)
    master = browser(world, "master")
    refused = master.post(f"/s/{SPACE}/tickets/{ticket}/approve", data={"comment": "ok"})
    assert refused.status_code == 403
    assert "reload the page" in refused.text
    assert _status(world, ticket) == before
    approved = master.post(
        f"/s/{SPACE}/tickets/{ticket}/approve",
        data={"csrf": csrf_of(master), "comment": "ok"},
        follow_redirects=False,
    )
    assert approved.status_code == 303


def test_a_form_missing_its_token_and_its_fields_is_refused_as_a_csrf_failure(world):
    root = browser(world, "super")
    before = _groups(world)
    refused = root.post("/groups", data={})
    assert refused.status_code == 403
    assert "reload the page" in refused.text and "Field required" not in refused.text
    assert _groups(world) == before


def test_the_api_still_answers_a_body_without_its_fields_with_422(world):
    # the API has no form token: its validation errors are unchanged
    root = browser(world, "super")
    answered = root.post("/api/v1/spaces", json={}, headers={"X-CSRF-Token": csrf_of(root)})
    assert answered.status_code == 422
    assert answered.json()["error"]["code"] == "invalid_input"


def test_every_display_name_input_allows_exactly_what_the_services_take(world):
    root = browser(world, "super")
    project = world.new_project()
    forms = ["/spaces", "/groups", f"/s/{SPACE}/projects/new", f"/spaces/{SPACE}/rename"]
    assert project
    for url in forms:
        page = root.get(url)
        assert page.status_code == 200, url
        inputs = re.findall(r'<input name="display_name"[^>]*>', page.text)
        assert inputs, url
        for found in inputs:
            assert f'maxlength="{display_name.LIMIT}"' in found, (url, found)
