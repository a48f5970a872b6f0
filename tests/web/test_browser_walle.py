"""The whole Walle workflow done only in the browser (real Chromium, a real ``ferryman serve``
with its embedded worker, the real fleet), once in English and once in Chinese (every browser
but the second approver's in the run's language): a superuser makes users and a space with an
owner; the owner adds servers, trusts their host keys and invites the team; switches staging's
approval on, sees production's and sets a secret variable; a master creates a project from a
named server and a label; a developer files a ticket; another master approves it (in
Chinese); the gray release fails on one host; the developer retries the failed host; after a
second release, a master rolls back to the older one from the Releases page. Screenshots of
each page go to the test's output (and ``$FERRYMAN_SCREENSHOTS``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from ferryman.bootstrap import prepare_home
from ferryman.services import users
from tests.helpers import Repo, live, read_live, running_server, unique
from tests.web.test_browser import PASSWORD, Shots, chromium  # noqa: F401 - a fixture

if TYPE_CHECKING:
    from playwright.sync_api import Page

TOKEN = "walle-token-5b1e7d"


@pytest.fixture
def walle_server(settings) -> Iterator[str]:
    """A fresh install with its first superuser (``ferryman user create --superuser``)."""
    db = prepare_home(settings)
    users.create_user(db, "root", PASSWORD, superuser=True)
    db.dispose()
    with running_server(settings.home) as url:
        yield url


def browser_for(chromium, url: str, username: str, locale: str = "en-US", width: int = 1280):  # noqa: F811
    context = chromium.new_context(
        base_url=url, locale=locale, viewport={"width": width, "height": 900}
    )
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_load_state()
    return page


def submit(page, form: str) -> None:
    page.click(f"{form} button[type=submit]")
    page.wait_for_load_state()


LOCALES = {"en": "en-US", "zh": "zh-CN"}


def said(lang: str, text: str) -> str:
    """``text`` as the UI shows it in ``lang``."""
    from ferryman.web import i18n

    return i18n.translations("zh_CN" if lang == "zh" else "en").gettext(text)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_team_moves_from_walle_and_does_everything_in_the_browser(
    lang,
    walle_server,
    chromium,  # noqa: F811
    fleet,
    git_host,
    targets,
    tmp_path,
):
    shots = Shots(tmp_path / "screenshots")
    hosts = targets[:3]
    repo = Repo(git_host, tmp_path, unique("walle"))
    repo.commit({"index.html": "v1\n"}, message="first page", tag="v1")
    repo.commit({"index.html": "v2\n"}, message="second page", tag="v2")
    space = unique("team")

    # --- the superuser: users, then a space owned by one of them ---------------------------
    root = browser_for(chromium, walle_server, "root", locale=LOCALES[lang])
    root.goto("/users")
    for name in ("boss", "ann", "ben", "devi"):
        root.fill("form[action='/users'] input[name=username]", name)
        root.fill("form[action='/users'] input[name=password]", PASSWORD)
        submit(root, "form[action='/users']")
    root.goto("/spaces")
    root.fill("#new-space input[name=name]", space)
    root.fill("#new-space input[name=owner]", "boss")
    submit(root, "#new-space")
    assert root.url.endswith(f"/s/{space}/")
    shots.take(root, f"spaces-{lang}")

    # --- the owner: servers, host keys, the public key, the team --------------------------
    boss = browser_for(chromium, walle_server, "boss", locale=LOCALES[lang])
    boss.goto(f"/s/{space}/")
    assert boss.locator("#onboarding li").count() == 6
    shots.take(boss, f"onboarding-{lang}")
    for i, host in enumerate(hosts):
        boss.goto(f"/s/{space}/servers/new")
        boss.fill("input[name=name]", f"web-{i + 1}")
        boss.fill("input[name=address]", host.address)
        boss.fill("input[name=user]", "root")
        boss.fill("input[name=labels]", "web" if i else "")
        submit(boss, "form[action$='/servers']")
    for i in range(len(hosts)):
        boss.goto(f"/s/{space}/servers")
        boss.locator("a[href$='/trust']").nth(i).click()
        boss.wait_for_selector("#presented")
        submit(boss, "form[action$='/trust']")
    boss.goto(f"/s/{space}/servers")
    assert boss.locator("code.fingerprint").count() == len(hosts)
    public = boss.inner_text("#public-key").strip()
    assert public.startswith("ssh-")
    shots.take(boss, f"servers-{lang}")
    for name, role in (("ann", "master"), ("ben", "master"), ("devi", "developer")):
        boss.goto(f"/s/{space}/members")
        boss.fill("form[action$='/members'].row input[name=username]", name)
        boss.select_option("form[action$='/members'].row select[name=role]", role)
        submit(boss, "form[action$='/members'].row")

    # --- the owner sets production's approval and a secret variable -----------------------
    boss.goto(f"/s/{space}/environments")
    staging = boss.locator("#env-staging form.env-form")  # approval switched on by hand too
    assert not staging.locator("input[name=approval]").is_checked()
    staging.locator("input[name=approval]").check()
    staging.locator("button[type=submit]").click()
    boss.wait_for_load_state()
    assert boss.locator("#env-staging input[name=approval]").is_checked()
    production = boss.locator("#env-production form.env-form")
    assert production.locator("input[name=approval]").is_checked()
    production.locator("textarea[name=secret_variables]").fill(f"DEPLOY_TOKEN={TOKEN}")
    production.locator("button[type=submit]").click()
    boss.wait_for_load_state()
    assert TOKEN not in boss.content() and "DEPLOY_TOKEN=***" in boss.content()
    shots.take(boss, f"environments-{lang}")

    # the space's key goes into the hosts' authorized_keys (what an admin does on each host)
    keys = fleet.base / "authorized_keys"
    before = keys.read_text()
    keys.write_text(before + public + "\n")
    try:
        _the_team_ships_and_rolls_back(chromium, walle_server, space, repo, hosts, shots, lang)
    finally:
        keys.write_text(before)


def _the_team_ships_and_rolls_back(chromium, url, space, repo, hosts, shots, lang) -> None:  # noqa: F811
    missed = hosts[2]
    ready = f"/srv/ready-{repo.name}"
    for host in hosts[:2]:
        host.path(ready).write_text("")

    # --- a master creates the project from a named server and a label ----------------------
    ann = browser_for(chromium, url, "ann", locale=LOCALES[lang])
    ann.goto(f"/s/{space}/projects/new")
    ann.fill("input[name=project]", repo.name)
    ann.fill("input[name=repo]", repo.url)
    p = "env.production."
    ann.fill(f"textarea[name='{p}servers']", "web-1")
    ann.fill(f"textarea[name='{p}labels']", "web")
    ann.fill(f"input[name='{p}webroot']", f"/srv/www/{repo.name}")
    ann.fill(f"input[name='{p}releases']", f"/srv/releases/{repo.name}")
    ann.fill(f"textarea[name='{p}strategy']", "batches: [1, 2]\nmax_failed: 1\n")
    ann.fill(
        f"textarea[name='{p}tasks.pre_release']",
        f'test -f {ready} || {{ echo "not ready: $DEPLOY_TOKEN" >&2; exit 4; }}\n',
    )
    ann.click("form.project-form > button[type=submit]")
    ann.wait_for_url(f"**/projects/{repo.name}")

    # --- a developer files a ticket; another master approves it in Chinese -----------------
    devi = browser_for(chromium, url, "devi", locale=LOCALES[lang])
    first = _ticket(devi, space, repo.name, "v1", "first page")
    ben = browser_for(chromium, url, "ben", locale="zh-CN")
    ben.goto(f"/s/{space}/tickets/{first}")
    ben.fill("form[action$='/approve'] input[name=comment]", "好")
    ben.click("form[action$='/approve'] button[type=submit]")
    ben.wait_for_selector(".flash")
    shots.take(ben, "ticket-approved-zh")

    # --- the developer deploys: one host fails; they retry the failed host -----------------
    devi.goto(f"/s/{space}/tickets/{first}")
    devi.click("form[action$='/deploy'] button[type=submit]")
    devi.wait_for_url(f"**/s/{space}/deploys/*")
    devi.wait_for_selector("#console[data-ended]", timeout=180_000)
    assert devi.get_attribute("#console", "data-ended") == "success"  # within max_failed
    assert missed.address in devi.inner_text("#failure")
    assert TOKEN not in devi.content()
    assert live(missed, repo.name) is None
    shots.take(devi, f"console-missed-host-{lang}")
    missed.path(ready).write_text("")
    devi.once("dialog", lambda dialog: dialog.accept())
    devi.click("#retry-failed")
    devi.wait_for_selector("#console[data-ended]", timeout=180_000)
    assert devi.get_attribute("#console", "data-ended") == "success"
    assert {read_live(h, repo.name, "index.html") for h in hosts} == {"v1\n"}

    # --- a second release, then a master rolls back to the first from the Releases page ----
    second = _ticket(devi, space, repo.name, "v2", "second page")
    ann.goto(f"/s/{space}/tickets/{second}")
    ann.fill("form[action$='/approve'] input[name=comment]", "ok")
    ann.click("form[action$='/approve'] button[type=submit]")
    ann.wait_for_selector(".flash")
    devi.goto(f"/s/{space}/tickets/{second}")
    devi.click("form[action$='/deploy'] button[type=submit]")
    devi.wait_for_url(f"**/s/{space}/deploys/*")
    devi.wait_for_selector("#console[data-ended]", timeout=180_000)
    assert devi.get_attribute("#console", "data-ended") == "success"
    assert {read_live(h, repo.name, "index.html") for h in hosts} == {"v2\n"}
    console = devi.url

    ann.goto(f"/s/{space}/projects/{repo.name}/releases?env=production")
    assert ann.locator("tbody tr", has_text=hosts[0].address).count() >= 1
    offers = ann.locator("a", has_text=said(lang, "Roll back to this"))
    assert offers.count() == 1  # v1: complete on every host and not live
    shots.take(ann, f"releases-{lang}")
    offers.click()
    ann.click("#confirm button[type=submit]")
    ann.wait_for_url(f"**/s/{space}/deploys/*")
    ann.wait_for_selector("#console[data-ended]", timeout=180_000)
    assert ann.get_attribute("#console", "data-ended") == "success"
    assert {read_live(h, repo.name, "index.html") for h in hosts} == {"v1\n"}
    assert live(hosts[0], repo.name) in ann.inner_text("#summary")
    ann.goto(f"/s/{space}/tickets/{second}")
    assert ann.locator("#rolled-back").count() == 1

    # --- every page, in both languages, for docs/screenshots ------------------------------
    pages = {
        "dashboard": f"/s/{space}/",
        "projects": f"/s/{space}/projects",
        "project": f"/s/{space}/projects/{repo.name}",
        "project-form": f"/s/{space}/projects/{repo.name}/edit",
        "project-access": f"/s/{space}/projects/{repo.name}/access",
        "tickets": f"/s/{space}/tickets",
        "ticket": f"/s/{space}/tickets/{second}",
        "new-ticket": f"/s/{space}/tickets/new?project={repo.name}&env=production",
        "deploys": f"/s/{space}/deploys",
        "members": f"/s/{space}/members",
        "audit": f"/s/{space}/audit",
    }
    if lang == "en":  # one run takes every page in both languages
        for who, shown in ((ann, "en"), (ben, "zh")):
            for name, path in pages.items():
                who.goto(path)
                who.wait_for_load_state()
                shots.take(who, f"{name}-{shown}")
    assert "审计日志" in ben.inner_text("nav.main")
    if lang == "zh":  # the whole workflow read in Chinese: no English left on its pages
        for path in pages.values():
            ann.goto(path)
            ann.wait_for_load_state()
            nav = ann.inner_text("nav.main")
            assert "审计日志" in nav and "Audit log" not in nav, path

    # --- the dashboard and the console on a phone -----------------------------------------
    phone = browser_for(chromium, url, "devi", locale=LOCALES[lang], width=390)
    phone.goto(f"/s/{space}/")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    assert phone.locator("nav.main").bounding_box()["height"] < 60  # one line, it scrolls
    shots.take(phone, f"dashboard-phone-{lang}")
    phone.goto(console)
    phone.wait_for_selector("#console[data-ended]")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    assert phone.locator("#log").bounding_box()["y"] < 844  # the log is on the first screen
    shots.take(phone, f"console-phone-{lang}")


def _ticket(page: Page, space: str, project: str, tag: str, title: str) -> str:
    page.goto(f"/s/{space}/tickets/new?project={project}&env=production")
    page.locator("[data-tag] option").nth(1).wait_for(state="attached")
    # the form starts with a ref chosen: the default branch, shown as the selected one
    assert page.input_value("[data-ref]") == page.input_value("[data-branch]") != ""
    page.select_option("[data-tag]", tag)
    page.fill("input[name=title]", title)
    page.click("#ticket-form button[type=submit]")
    page.wait_for_url(f"**/s/{space}/tickets/*")
    return page.url.rsplit("/", 1)[1]
