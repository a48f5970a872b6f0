"""A user's time zone, chosen in their account: the pages (in a real Chromium whose own zone
is another one) show times in it, and a start time typed into the ticket form is read in it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from ferryman.bootstrap import prepare_home
from ferryman.config.project import parse_project
from ferryman.services import deploys, projects, spaces, tickets, users
from ferryman.services.audit import SYSTEM
from tests.api.world import SPACE, World, build_world
from tests.conftest import NET, set_approval
from tests.helpers import ADMIN, project_config, running_server, web_session
from tests.web.test_browser import PASSWORD, chromium  # noqa: F401 - the fixture

SHOWN = "GMT+5:30"  # Asia/Kolkata, named by Chromium's en-US format: no browser zone says it


@pytest.mark.fleet
def test_the_pages_show_times_in_the_zone_the_user_chose_not_the_browsers(settings, chromium):  # noqa: F811
    db = prepare_home(settings)
    users.create_user(db, "dev", PASSWORD)
    spaces.set_member(db, SYSTEM, "default", "dev", "developer")
    config = project_config("zoned", f"ssh://git@{NET}.50/zoned.git", [])
    config["environments"]["production"]["hosts"] = [f"{NET}.9:1"]  # nothing listens there
    projects.apply_project(db, ADMIN, parse_project(config))
    set_approval(db, "production", False)
    deploys.request_deploy(db, ADMIN, "zoned", "production", "v1")
    db.dispose()
    with running_server(settings.home) as url:
        context = chromium.new_context(base_url=url, locale="en-US", timezone_id="Europe/Paris")
        context.set_default_timeout(30_000)
        page = context.new_page()
        page.goto("/login")
        page.fill("input[name=username]", "dev")
        page.fill("input[name=password]", PASSWORD)
        page.click("form[action='/login'] button[type=submit]")
        page.wait_for_url("**/s/default/")

        page.goto("/s/default/deploys")
        before = page.inner_text("table time")
        assert SHOWN not in before  # the browser's own zone until the user chooses one

        page.goto("/account")
        page.select_option("select[name=zone]", "Asia/Kolkata")
        page.click("form[action='/account/time-zone'] button[type=submit]")
        page.wait_for_selector(".flash")
        assert page.input_value("select[name=zone]") == "Asia/Kolkata"

        page.goto("/s/default/deploys")
        assert SHOWN in page.inner_text("table time")
        assert page.get_attribute("table time", "title").endswith(" UTC")
        context.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("zones"))


def _browser(world: World) -> tuple[TestClient, str]:
    return web_session(world.settings, world.db, world.actors["author"].username)


def test_a_start_time_typed_by_a_user_with_a_zone_is_read_in_that_zone(world):
    client, token = _browser(world)
    saved = client.post("/account/time-zone", data={"csrf": token, "zone": "Asia/Shanghai"})
    assert saved.status_code == 200 and 'data-zone="Asia/Shanghai"' in saved.text
    project = world.new_project()
    name = projects.get_project(world.db, world.actors["super"], int(project))[0].name
    made = client.post(
        f"/s/{SPACE}/tickets",
        data={
            "csrf": token,
            "project": name,
            "env": "production",
            "ref": "v1",
            "title": "at ten in Shanghai",
            "not_before": "2031-03-01T10:00",
            "tz_offset": "-60",  # what a browser in Paris would have said: not used
        },
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text[:500]
    ticket_id = int(made.headers["location"].rstrip("/").rsplit("/", 1)[1])
    ticket = tickets.get_ticket(world.db, world.actors["super"], ticket_id)
    assert datetime.fromisoformat(ticket["not_before"]) == datetime(2031, 3, 1, 2, 0, tzinfo=UTC)


def test_a_zone_that_does_not_exist_is_refused_and_the_choice_kept(world):
    client, token = _browser(world)
    client.post("/account/time-zone", data={"csrf": token, "zone": "Europe/Berlin"})
    for bad in ("Mars/Olympus_Mons", "../../etc/passwd", "Asia/Shanghai\n<script>"):
        refused = client.post("/account/time-zone", data={"csrf": token, "zone": bad})
        assert "is not a time zone" in refused.text
        assert 'data-zone="Europe/Berlin"' in refused.text
    back = client.post("/account/time-zone", data={"csrf": token, "zone": ""})
    assert 'data-zone=""' in back.text  # the browser's zone again
