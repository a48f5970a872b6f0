"""On a phone (390 px) in a real Chromium: a table wider than the screen scrolls inside its
card, its headings and short Chinese words (回滚, 部署) keep to one line instead of one
character a line, nothing is wider than the screen, and the dashboard's chart labels are
drawn at a size that can be read. Screenshots go to the test's output."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.world import PASSWORD, SPACE, World, build_world
from tests.helpers import running_server
from tests.web.test_browser import Shots, chromium  # noqa: F401 - a fixture
from tests.web.test_browser_walle import LOCALES

pytestmark = pytest.mark.processes


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, str]]:
    world = build_world(tmp_path_factory.mktemp("phone"))
    world.deployed_ticket()
    world.failed_deploy()
    world.paused_rollout()
    world.db.dispose()
    with running_server(world.settings.home) as url:
        yield world, url


def phone(chromium, url: str, lang: str):  # noqa: F811
    context = chromium.new_context(
        base_url=url, locale=LOCALES[lang], viewport={"width": 390, "height": 844}
    )
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.goto("/login")
    page.fill("input[name=username]", "super-user")
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_load_state()
    return page


# (text, lines) of every heading and every short cell (a word, no space): how many lines of
# the screen its text takes
LINES = """cells => cells
  .map(c => [c.innerText.trim(), c])
  .filter(([text, c]) => text && (c.tagName === "TH" || (text.length <= 6 && !/\\s/.test(text))))
  .map(([text, c]) => {
    const range = document.createRange();
    range.selectNodeContents(c);
    const tops = [...range.getClientRects()].filter(b => b.width > 0).map(b => b.top)
                                             .sort((a, b) => a - b);
    // boxes of one line (a badge and the text in it) start within a few pixels of each other
    return [text, tops.filter((top, i) => i === 0 || top - tops[i - 1] > 8).length];
  })"""


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_tables_on_a_phone_scroll_and_keep_their_words_and_headings_whole(
    served,
    chromium,  # noqa: F811 - the fixture
    lang,
    tmp_path: Path,
):
    _, url = served
    page = phone(chromium, url, lang)
    shots = Shots(tmp_path)
    for name, path in (("deploys", f"/s/{SPACE}/deploys"), ("dashboard", f"/s/{SPACE}/")):
        page.goto(path)
        page.wait_for_load_state()
        shots.take(page, f"{name}-phone-tables-{lang}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        cells = page.eval_on_selector_all("main table th, main table td", LINES)
        assert cells, path
        broken = [text for text, lines in cells if lines > 1]
        assert not broken, (path, broken)
        if lang == "zh" and name == "deploys":
            assert {"回滚", "部署"} & {text for text, _ in cells}, cells


def test_the_dashboards_chart_labels_on_a_phone_are_at_least_nine_pixels_high(
    served,
    chromium,  # noqa: F811
):
    _, url = served
    page = phone(chromium, url, "zh")
    page.goto(f"/s/{SPACE}/")
    heights: list[float] = page.eval_on_selector_all(
        ".chart .tick", "ticks => ticks.map(t => t.getBoundingClientRect().height)"
    )
    assert heights and min(heights) >= 9, heights
