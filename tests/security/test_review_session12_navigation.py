"""Session 12 review of the one-row navigation and its menus (6949bbf, 034e03e): the header each
role is served links only to pages that role may open, the install's pages (users) only for a
superuser, and every link is in the HTML itself — the More menu only moves links app.js
measures, so a browser without the script still has them all."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.api.world import SPACE, World, build_world
from tests.web.test_pages import browser

HEADER = re.compile(r'<header class="top">(.*?)</header>', re.S)
HREF = re.compile(r'href="(/[^"#?]*)')
SPACE_LINKS = ("projects", "tickets", "deploys", "servers", "environments", "members")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("nav12"))


def header_links(world: World, role: str) -> tuple[list[str], TestClient]:
    client = browser(world, role)
    page = client.get(f"/s/{SPACE}/")
    assert page.status_code == 200, page.status_code
    header = HEADER.search(page.text)
    assert header is not None, "no header"
    return sorted(set(HREF.findall(header.group(1)))), client


@pytest.mark.parametrize("role", ["reporter", "developer", "master", "owner", "super"])
def test_every_link_in_a_roles_header_opens_for_that_role(world, role):
    links, client = header_links(world, role)
    for link in links:
        if link.startswith("/static/"):
            continue
        answer = client.get(link)  # "/" goes on to the space's dashboard
        assert answer.status_code == 200, (role, link, answer.status_code)
        assert "/login" not in str(answer.url), (role, link)


@pytest.mark.parametrize("role", ["reporter", "developer", "master", "owner"])
def test_only_a_superuser_is_shown_and_served_the_users_page(world, role):
    links, client = header_links(world, role)
    assert "/users" not in links
    assert client.get("/users", follow_redirects=False).status_code in (403, 404)
    assert "/users" in header_links(world, "super")[0]


@pytest.mark.parametrize("role", ["reporter", "developer"])
def test_audit_and_notification_links_are_neither_shown_nor_served_below_master(world, role):
    links, client = header_links(world, role)
    for page in ("audit", "notify"):
        assert f"/s/{SPACE}/{page}" not in links
        answer = client.get(f"/s/{SPACE}/{page}", follow_redirects=False)
        assert answer.status_code == 403, (page, answer.status_code)


def test_every_space_link_is_in_the_html_without_the_script(world):
    links, _client = header_links(world, "developer")
    for page in SPACE_LINKS:
        assert f"/s/{SPACE}/{page}" in links, page
