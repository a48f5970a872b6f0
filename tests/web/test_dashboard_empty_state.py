"""A dashboard with nothing deployed in its period draws no empty axes: it says so and what
to do next — create a project (a space without one), deploy one (a space with projects), or
widen the filters (a project or environment that had none) — in English and in Chinese, with
a button only for those who may take the step. Once a deploy has finished, the charts are
drawn and the empty state is gone."""

from __future__ import annotations

import re

import pytest

from ferryman.config.project import parse_project
from ferryman.services import projects, spaces
from ferryman.services.audit import SYSTEM
from tests.api.world import SPACE, World, build_world
from tests.helpers import allow_local_repos
from tests.web.test_pages import browser

CHINESE = "zh-CN,zh;q=0.9"
QUIET = "quiet"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    built = build_world(tmp_path_factory.mktemp("empty"))
    spaces.create_space(built.db, SYSTEM, QUIET)  # a project, never deployed
    allow_local_repos(built.db, QUIET)
    for role in ("master", "reporter"):
        spaces.set_member(built.db, SYSTEM, QUIET, built.actors[role].username, role)
    projects.apply_project(built.db, SYSTEM, parse_project(built.config("idle", space=QUIET)))
    return built


def charts(text: str) -> str:
    found = re.search(r'<section class="card" id="charts">(.*?)</section>', text, re.S)
    assert found is not None, "no charts card"
    return found.group(1)


def test_a_space_without_projects_says_to_create_one_instead_of_drawing_empty_axes(world):
    card = charts(browser(world, "other").get("/s/other/").text)  # its owner
    assert "<svg" not in card and 'id="charts-empty"' in card
    assert "No deploys in the last 14 days." in card
    assert "Create a project and deploy it" in card
    assert 'href="/s/other/projects/new"' in card
    chinese = charts(browser(world, "other", language=CHINESE).get("/s/other/").text)
    assert "最近 14 天内还没有部署。" in chinese and "创建一个项目并部署它" in chinese
    assert "<svg" not in chinese


def test_a_space_with_a_project_never_deployed_says_to_deploy_it(world):
    card = charts(browser(world, "master").get(f"/s/{QUIET}/").text)
    assert "<svg" not in card
    assert "Deploy a project to see its deploys per day and how long they take." in card
    assert f'href="/s/{QUIET}/tickets/new"' in card
    chinese = charts(browser(world, "master", language=CHINESE).get(f"/s/{QUIET}/").text)
    assert "部署一个项目后，这里会显示每天的部署次数和部署耗时。" in chinese
    reporter = charts(browser(world, "reporter").get(f"/s/{QUIET}/").text)
    assert "Deploy a project" in reporter and "/tickets/new" not in reporter  # no button


def test_filters_that_match_no_deploy_offer_to_show_everything(world):
    world.deployed_ticket()  # staging of the world's space: the unfiltered charts are drawn
    master = browser(world, "master")
    drawn = charts(master.get(f"/s/{SPACE}/").text)
    assert "<svg" in drawn and 'id="charts-empty"' not in drawn
    card = charts(master.get(f"/s/{SPACE}/?env=dev").text)
    assert "<svg" not in card
    assert "No deploys with these filters in the last 14 days." in card
    assert f'href="/s/{SPACE}/"' in card
    chinese = charts(browser(world, "master", language=CHINESE).get(f"/s/{SPACE}/?env=dev").text)
    assert "最近 14 天内没有符合筛选条件的部署。" in chinese and "查看全部项目和环境" in chinese
