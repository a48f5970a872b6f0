"""The top navigation in a real Chromium against a real ``ferryman serve``: a superuser (who
sees every link: the space's pages, notifications, the audit log, and spaces, groups and
users) gets it on one row at 1280 and 1024 px, in English and in Chinese — the links that do
not fit go into a "More" menu, every one of them still reachable — and on a phone (390 px)
it is one row of its own that scrolls, with nothing wider than the screen. Screenshots go to
the test's output (and ``$FERRYMAN_SCREENSHOTS``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ferryman.bootstrap import prepare_home
from ferryman.services import spaces, users
from ferryman.services.audit import SYSTEM
from tests.helpers import running_server
from tests.web.test_browser import PASSWORD, Shots, chromium  # noqa: F401 - a fixture
from tests.web.test_browser_walle import LOCALES, browser_for

SPACE = "shop"
SPACE_SHOWN = "Acme 网店 (production)"
# every page the navigation leads to, for a superuser
LINKS = (
    f"/s/{SPACE}/",
    f"/s/{SPACE}/projects",
    f"/s/{SPACE}/tickets",
    f"/s/{SPACE}/deploys",
    f"/s/{SPACE}/servers",
    f"/s/{SPACE}/environments",
    f"/s/{SPACE}/members",
    f"/s/{SPACE}/notify",
    f"/s/{SPACE}/audit",
    "/spaces",
    "/groups",
    "/users",
    "/account",
)


@pytest.fixture
def nav_server(settings) -> Iterator[str]:
    db = prepare_home(settings)
    users.create_user(db, "root", PASSWORD, superuser=True)
    spaces.create_space(db, SYSTEM, SPACE, display_name=SPACE_SHOWN)
    spaces.create_space(db, SYSTEM, "intranet", display_name="内部系统")
    db.dispose()
    with running_server(settings.home) as url:
        yield url


def header_rows(page) -> int:
    """How many rows the header's items take: items whose boxes share a line are one row."""
    tops: list[float] = page.eval_on_selector_all(
        "header.top > *:not(.sr)",
        """items => items.map(i => i.getBoundingClientRect())
                         .filter(box => box.height > 0)
                         .map(box => box.top + box.height / 2)""",
    )
    rows: list[float] = []
    for middle in sorted(tops):
        if not rows or middle - rows[-1] > 12:
            rows.append(middle)
    return len(rows)


def reachable(page) -> set[str]:
    """The navigation's links: shown on the row, or in a menu of the header."""
    found: list[str] = page.eval_on_selector_all(
        "header.top a[href]", "links => links.map(a => a.getAttribute('href'))"
    )
    return set(found)


def clipped(page) -> list[str]:
    """Links on the row that are cut off or pushed out of it (none should be)."""
    out: list[str] = page.evaluate(
        """() => {
          const row = document.querySelector("nav.main .links");
          const box = row.getBoundingClientRect();
          return [...row.querySelectorAll("a")]
            .filter(a => { const r = a.getBoundingClientRect();
                           return r.right > box.right + 0.5 || r.left < box.left - 0.5; })
            .map(a => a.getAttribute("href"));
        }"""
    )
    return out


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_superusers_navigation_is_one_row_at_1280_and_1024_px(
    lang,
    nav_server,
    chromium,  # noqa: F811
    tmp_path,
):
    shots = Shots(tmp_path / "screenshots")
    for width in (1440, 1280, 1024):
        root = browser_for(chromium, nav_server, "root", locale=LOCALES[lang], width=width)
        root.goto(f"/s/{SPACE}/audit")
        root.wait_for_load_state()
        nav = root.locator("nav.main").bounding_box()
        link = root.locator("nav.main .links a").first.bounding_box()
        assert nav is not None and link is not None
        assert nav["height"] < 2 * link["height"], (width, nav)  # one row of links
        assert header_rows(root) == 1, width
        assert root.locator("header.top").bounding_box()["height"] < 60, width
        assert root.evaluate("document.documentElement.scrollWidth") <= width
        assert clipped(root) == [], width
        assert set(LINKS) <= reachable(root), width
        # the current page is marked, on the row or on the menu that holds it
        assert root.locator("header.top .on").count() >= 1
        if root.locator("nav.main details.more:not([hidden])").count():
            root.click("nav.main details.more > summary")
            menu = root.locator("nav.main details.more .menu-panel")
            assert menu.is_visible() and menu.locator("a").count() >= 1
            assert root.evaluate("document.documentElement.scrollWidth") <= width
        root.click("header.top details.user > summary")
        panel = root.locator("header.top details.user .menu-panel")
        assert panel.locator("a[href='/users']").is_visible()
        box = panel.bounding_box()
        assert box is not None and box["x"] + box["width"] <= width  # opens inside the window
        shots.take(root, f"navigation-{width}-{lang}")
        root.context.close()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_navigation_collapses_to_one_scrolling_row_on_a_phone(
    lang,
    nav_server,
    chromium,  # noqa: F811
    tmp_path,
):
    shots = Shots(tmp_path / "screenshots")
    phone = browser_for(chromium, nav_server, "root", locale=LOCALES[lang], width=390)
    phone.goto(f"/s/{SPACE}/")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    nav = phone.locator("nav.main").bounding_box()
    assert nav is not None and nav["height"] < 60 and nav["width"] <= 390
    assert header_rows(phone) == 2  # the brand, the space and the menus; then the links
    # every link of the space is on the scrolling row (none hidden in a menu on a phone)
    assert phone.locator("nav.main details.more:not([hidden])").count() == 0
    on_row = phone.eval_on_selector_all(
        "nav.main .links a", "links => links.map(a => a.getAttribute('href'))"
    )
    assert on_row == list(LINKS[:9])
    shots.take(phone, f"navigation-phone-{lang}")
    phone.click("header.top details.user > summary")
    panel = phone.locator("header.top details.user .menu-panel")
    assert panel.locator("a[href='/users']").is_visible()
    box = panel.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_space_is_renamed_in_the_browser_and_its_new_name_is_shown_as_text(
    lang,
    nav_server,
    chromium,  # noqa: F811
    tmp_path,
):
    shots = Shots(tmp_path / "screenshots")
    root = browser_for(chromium, nav_server, "root", locale=LOCALES[lang])
    root.goto("/spaces")
    root.click(f"tr[data-space='{SPACE}'] a[href='/spaces/{SPACE}/rename']")
    root.wait_for_url(f"**/spaces/{SPACE}/rename")
    assert root.input_value("input[name=display_name]") == SPACE_SHOWN
    # the input allows what the server takes; a client without that limit is refused by it
    field = "input[name=display_name]"
    assert root.get_attribute(field, "maxlength") == "100"
    root.eval_on_selector(field, "input => input.removeAttribute('maxlength')")
    root.fill("input[name=display_name]", "长" * 101)
    root.click("#rename-space button[type=submit]")
    root.wait_for_load_state()
    error = root.inner_text("#display-name-error")
    assert ("101" in error) and (("最多 100 个字符" in error) == (lang == "zh")), error
    assert root.input_value("input[name=display_name]") == "长" * 101  # kept
    shots.take(root, f"space-rename-{lang}")
    shown = "<b>Acme</b> 网店 & co"
    root.fill("input[name=display_name]", shown)
    root.click("#rename-space button[type=submit]")
    root.wait_for_url("**/spaces")
    assert shown in root.inner_text(".flash")
    assert root.inner_text(f"tr[data-space='{SPACE}'] td a") == shown  # text, not markup
    assert root.locator(f"tr[data-space='{SPACE}'] b").count() == 0
    root.goto(f"/s/{SPACE}/")
    assert root.title().startswith(f"{'Dashboard' if lang == 'en' else '仪表盘'} · {shown}")
    assert root.inner_text("#space-switch option:checked") == shown
    assert root.inner_text("h1 small") == shown
