"""Deploys and tickets lists: filters (project, environment, state, user, date) and real
pagination by an id cursor — every row reachable, none twice, no silent cap."""

from __future__ import annotations

import asyncio
import re

import pytest

from ferryman.services import deploys, projects, tickets
from tests.api.world import SPACE, World, build_world
from tests.web.test_pages import browser

ROWS = 57  # more than a page (50)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("lists"))


def walk(client, url: str, pattern: str) -> list[int]:
    """Every id the list shows, following its "Older" links to the end."""
    seen: list[int] = []
    while url:
        html = client.get(url).text
        seen += [int(x) for x in re.findall(pattern, html)]
        found = re.search(r'<a href="([^"]+)" class="button small secondary" rel="next">', html)
        url = found.group(1).replace("&amp;", "&") if found else ""
    return seen


def test_the_deploy_list_filters_and_pages_through_every_deploy(world):
    project = world.new_project()
    made = []
    for _ in range(ROWS):
        d = deploys.request_deploy(world.db, world.actors["master"], int(project), "staging", "v1")
        deploys.request_cancel(world.db, world.actors["master"], d.id)
        made.append(d.id)
    master = browser(world, "master")
    name = projects.get_project(world.db, world.actors["super"], int(project))[0].name
    url = f"/s/{SPACE}/deploys?project={name}&env=staging&status=cancelled&user=master-user"
    first = master.get(url).text
    assert f"{ROWS} in all" in first
    ids = walk(master, url, r'href="/s/acme/deploys/(\d+)">#')
    assert ids == sorted(made, reverse=True)  # every deploy once, newest first
    assert "No deploy matches these filters." in master.get(url + "&since=2999-01-01").text
    assert "0 in all" not in master.get(url + "&since=2000-01-01").text
    other = master.get(f"/s/{SPACE}/deploys?project={name}&status=success").text
    assert "No deploy matches these filters." in other


def test_the_ticket_list_filters_and_pages_through_every_ticket(world):
    project = world.new_project()
    author = world.actors["developer"]
    made = [
        asyncio.run(
            tickets.create_ticket(
                world.db, world.settings, author, int(project), "staging", "v1", title=f"t{i}"
            )
        )["id"]
        for i in range(ROWS)
    ]
    name = projects.get_project(world.db, world.actors["super"], int(project))[0].name
    dev = browser(world, "developer")
    url = f"/s/{SPACE}/tickets?project={name}&env=staging&mine=1"
    assert f"{ROWS} in all" in dev.get(url).text
    ids = walk(dev, url, r'<td><a href="/s/acme/tickets/(\d+)">#')
    assert ids == sorted(made, reverse=True)
    master = browser(world, "master")
    assert "No ticket matches these filters." in master.get(url).text  # not the master's
    assert f"{ROWS} in all" in master.get(url.replace("mine=1", "user=developer-user")).text


def test_the_servers_page_shows_a_hundred_at_a_time_and_reaches_every_server(world):
    from ferryman.services import inventory

    for n in range(120):
        inventory.create_server(
            world.db, world.actors["master"], SPACE, f"zz-{n:03d}", f"127.0.150.{n + 100}"
        )
    everyone = {x["name"] for x in inventory.list_servers(world.db, world.actors["super"], SPACE)}
    master = browser(world, "master")
    url = f"/s/{SPACE}/servers"
    assert f"{len(everyone)} in all" in master.get(url).text
    seen: list[str] = []
    while url:
        html = master.get(url).text
        seen += re.findall(r"<tr>\s*<td>([^<]+)<br>", html)
        found = re.search(r'<a href="([^"]+)" class="button small secondary" rel="next">', html)
        url = found.group(1).replace("&amp;", "&") if found else ""
    assert sorted(seen) == sorted(everyone) and len(seen) == len(set(seen))
