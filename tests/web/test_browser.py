"""The web UI in a real Chromium (Debian's, driven by Playwright) against a real
``ferryman serve`` with its embedded worker and the real SSH fleet: a master creates a
project through the form, a developer runs detection and creates a ticket for a tag; another
master approves it in a second browser; the deploy is watched in the live console through a
reload; a release is rolled back from the releases page; a reporter sees no buttons and is
refused when posting. Screenshots of the dashboard, the ticket preview and the console, in
both languages, are saved under the test's output dir (and copied to
``$FERRYMAN_SCREENSHOTS`` when set)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ferryman.bootstrap import prepare_home
from ferryman.services import spaces, users
from ferryman.services.audit import SYSTEM
from tests.helpers import Repo, read_live, running_server, unique

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.fleet
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery"


@pytest.fixture
def server(settings) -> Iterator[str]:
    db = prepare_home(settings)
    for name, role in (("dev", "developer"), ("lead", "master"), ("watcher", "reporter")):
        users.create_user(db, name, PASSWORD)
        spaces.set_member(db, SYSTEM, "default", name, role)
    db.dispose()
    with running_server(settings.home) as url:
        yield url


@pytest.fixture
def chromium() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: scripts/setup-system --test installs it")
        pytest.skip("chromium is missing: scripts/setup-system --test installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            browser.close()


class Shots:
    def __init__(self, base: Path) -> None:
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.extra = (
            Path(os.environ["FERRYMAN_SCREENSHOTS"])
            if os.environ.get("FERRYMAN_SCREENSHOTS")
            else None
        )

    def take(self, page, name: str) -> None:
        path = self.base / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if self.extra is not None:
            self.extra.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, self.extra / path.name)


def sign_in(browser, url: str, username: str, locale: str = "en-US"):
    context = browser.new_context(
        base_url=url, locale=locale, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url("**/s/default/")
    return page


def switch_language(page, code: str) -> None:
    page.click(f"header form[action='/language'] button[value='{code}']")
    page.wait_for_load_state()


def create_ticket(page: Page, project: str, tag: str, title: str) -> str:
    page.goto(f"/s/default/tickets/new?project={project}&env=production")
    page.locator("[data-tag] option").nth(1).wait_for(state="attached")
    page.select_option("[data-tag]", tag)
    assert page.input_value("[data-ref]") == tag
    page.fill("input[name=title]", title)
    page.click("#ticket-form button[type=submit]")
    page.wait_for_url("**/s/default/tickets/*")
    return page.url.rsplit("/", 1)[1]


def approve(page: Page, ticket: str) -> None:
    page.goto(f"/s/default/tickets/{ticket}")
    page.fill("form[action$='/approve'] input[name=comment]", "looks good")
    page.click("form[action$='/approve'] button[type=submit]")
    page.wait_for_selector(".flash")


def console_lines(page: Page) -> list[int]:
    ids: list[int] = page.eval_on_selector_all(
        "#log .line", "rows => rows.map(r => Number(r.dataset.id))"
    )
    return ids


def test_a_release_goes_from_form_to_fleet_and_back_in_the_browser(
    server, chromium, settings, git_host, targets, tmp_path
):
    shots = Shots(tmp_path / "screenshots")
    hosts = targets[:3]
    repo = Repo(git_host, tmp_path, unique("web"))
    repo.commit({"index.html": "v1\n"}, message="first page", tag="v1")
    repo.commit({"index.html": "v2\n", "about.html": "about\n"}, message="about page", tag="v2")

    # --- a master creates the project through the form; a developer runs detection -------
    lead = sign_in(chromium, server, "lead")
    lead.click("nav.main a[href$='/projects']")
    lead.click("a.button[href$='/projects/new']")
    lead.fill("input[name=project]", repo.name)
    lead.fill("input[name=repo]", repo.url)
    prefix = "env.production."
    lead.fill(f"textarea[name='{prefix}hosts']", "\n".join(h.address for h in hosts))
    lead.fill(f"input[name='{prefix}user']", "root")
    lead.fill(f"input[name='{prefix}webroot']", f"/srv/www/{repo.name}")
    lead.fill(f"input[name='{prefix}releases']", f"/srv/releases/{repo.name}")
    lead.fill(
        f"textarea[name='{prefix}tasks.pre_release']",
        'echo "checking $HOST"\nsleep 1\n',
    )
    lead.fill(
        f"textarea[name='{prefix}tasks.post_release']",
        'for i in 1 2 3; do printf "\\033[32mtick %s\\033[0m\\n" "$i"; sleep 0.4; done\n',
    )
    lead.click("form.project-form > button[type=submit]")
    lead.wait_for_url(f"**/projects/{repo.name}")
    dev = sign_in(chromium, server, "dev")
    dev.goto(f"/s/default/projects/{repo.name}")
    dev.click("[data-detect][data-env=production]")
    dev.wait_for_selector("[data-detect-for=production] [data-detect-ok]", timeout=60_000)
    assert dev.get_attribute("[data-detect-ok]", "data-detect-ok") == "true", dev.inner_text(
        "[data-detect-for=production]"
    )
    assert dev.locator("table.detect td.ok").count() >= len(hosts)

    # --- a ticket for a tag, approved by a master in another browser ----------------------
    ticket = create_ticket(dev, repo.name, "v1", "first release")
    assert dev.locator(".badge.s-pending_approval").count() == 1
    lead.goto(f"/s/default/tickets/{ticket}")
    assert "first page" in lead.inner_text("#preview")
    shots.take(lead, "ticket-preview-en")
    approve(lead, ticket)

    # --- the developer deploys and watches; a reload in the middle loses nothing -----------
    dev.goto(f"/s/default/tickets/{ticket}")
    dev.click("form[action$='/deploy'] button[type=submit]")
    dev.wait_for_url("**/s/default/deploys/*")
    deploy_id = dev.url.rsplit("/", 1)[1]
    dev.locator("#log .line", has_text="checking").first.wait_for(timeout=60_000)
    assert dev.get_attribute("#console", "data-ended") is None  # still running: reload now
    dev.reload()
    dev.wait_for_selector("#console[data-ended]", timeout=120_000)
    assert dev.get_attribute("#console", "data-ended") == "success"
    shown = console_lines(dev)
    stored = dev.request.get(f"/api/v1/deploys/{deploy_id}/log?limit=5000").json()["lines"]
    assert shown == [line["id"] for line in stored]  # every line once, in order, after reload
    assert dev.locator("#log .a-32").count() >= 3 * len(hosts)  # ANSI green ticks, coloured
    assert dev.locator("#host-tabs .tab").count() == len(hosts) + 1
    dev.click(f"#host-tabs .tab[data-host='{hosts[1].address}']")
    visible = dev.eval_on_selector_all(
        "#log .line:not(.hidden)", "rows => [...new Set(rows.map(r => r.dataset.host))]"
    )
    assert visible == [hosts[1].address]
    stage = "#stages li[data-stage]"  # a stage's item (the transfer's per-host bars are others)
    assert dev.locator(f"{stage}.failed").count() == 0
    assert dev.locator(f"{stage}.success").count() == dev.locator(stage).count() >= 8
    assert "post_release 3/3" in dev.inner_text("#stages")
    dev.click("#host-tabs .tab[data-host='']")
    shots.take(dev, "console-en")
    assert {read_live(h, repo.name, "index.html") for h in hosts} == {"v1\n"}

    # --- a second release, then a master rolls back from the releases page ---------------
    second = create_ticket(dev, repo.name, "v2", "about page")
    approve(lead, second)
    dev.goto(f"/s/default/tickets/{second}")
    dev.click("form[action$='/deploy'] button[type=submit]")
    dev.wait_for_selector("#console[data-ended]", timeout=120_000)
    assert {read_live(h, repo.name, "index.html") for h in hosts} == {"v2\n"}
    lead.goto(f"/s/default/projects/{repo.name}/releases?env=production")
    lead.click("text=Roll back to this")
    assert "Roll production back to" in lead.inner_text("#confirm")
    lead.click("#confirm button[type=submit]")
    lead.wait_for_url("**/s/default/deploys/*")
    lead.wait_for_selector("#console[data-ended]", timeout=120_000)
    assert lead.get_attribute("#console", "data-ended") == "success"
    assert {read_live(h, repo.name, "index.html") for h in hosts} == {"v1\n"}

    # --- a reporter: no buttons, and 403 when posting the form directly -------------------
    watcher = sign_in(chromium, server, "watcher")
    third = create_ticket(dev, repo.name, "v2", "again")
    watcher.goto(f"/s/default/tickets/{third}")
    assert watcher.locator("form[action$='/approve']").count() == 0
    assert watcher.locator("form[action$='/deploy']").count() == 0
    token = watcher.get_attribute("meta[name=csrf-token]", "content")
    for action in ("approve", "deploy"):
        refused = watcher.request.post(
            f"/s/default/tickets/{third}/{action}", form={"csrf": token, "comment": "x"}
        )
        assert refused.status == 403

    # --- screenshots in both languages -------------------------------------------------------
    lead.goto("/s/default/")
    shots.take(lead, "dashboard-en")
    switch_language(lead, "zh_CN")
    assert "仪表盘" in lead.inner_text("nav.main")
    shots.take(lead, "dashboard-zh")
    lead.goto(f"/s/default/tickets/{ticket}")
    assert "预览" in lead.inner_text("#preview h2")
    shots.take(lead, "ticket-preview-zh")
    lead.goto(f"/s/default/deploys/{deploy_id}")
    lead.wait_for_selector("#console[data-ended]")
    assert "部署成功" in lead.inner_text("#banner")
    shots.take(lead, "console-zh")
    names = sorted(p.name for p in shots.base.iterdir())
    assert names == sorted(
        f"{page}-{lang}.png"
        for page in ("dashboard", "ticket-preview", "console")
        for lang in ("en", "zh")
    )


def test_the_console_names_the_failing_host_stage_and_command(
    server, chromium, settings, git_host, targets, tmp_path
):
    from ferryman.config.project import parse_project
    from ferryman.db.session import Database
    from ferryman.services import deploys, projects
    from tests.helpers import ADMIN, project_config

    repo = Repo(git_host, tmp_path, unique("webfail"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    bad = targets[1].address
    config = project_config(
        repo.name,
        repo.url,
        targets[:2],
        tasks={"pre_release": f'if [ "$HOST" = "{bad}" ]; then echo broken >&2; exit 3; fi\n'},
    )
    config["environments"] = {"staging": config["environments"]["production"]}
    db = Database(settings.database_url)
    projects.apply_project(db, ADMIN, parse_project(config))
    deploy = deploys.request_deploy(db, ADMIN, repo.name, "staging", "v1")
    db.dispose()
    dev = sign_in(chromium, server, "dev", locale="zh-CN")
    dev.goto(f"/s/default/deploys/{deploy.id}")
    dev.wait_for_selector("#console[data-ended]", timeout=120_000)
    assert dev.get_attribute("#console", "data-ended") == "failed"
    banner = dev.inner_text("#banner")
    assert "部署失败" in banner and bad in banner and "pre_release" in banner
    assert "exit 3" in banner or "exit" in banner
    assert "bad" in dev.get_attribute(f"#host-tabs .tab[data-host='{bad}']", "class")
    assert dev.locator("#log .err", has_text="broken").count() == 1
