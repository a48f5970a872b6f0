"""Failures a team can act on in the browser (real Chromium, real ``ferryman serve`` and its
embedded worker, the real fleet): a gray release that missed one host is finished with
"Retry failed hosts"; a failed deploy shows host, stage, exit code and the last stderr lines
first — hostile stderr as text, the secret masked, the command behind a toggle — with
Retry for the developer, Roll back for a master and no button for a reporter (who is
refused when posting the form); failure lines look different from the rest of the log."""

from __future__ import annotations

from ferryman.bootstrap import prepare_home
from ferryman.config.project import parse_project
from ferryman.services import deploys, projects, secrets
from tests.helpers import ADMIN, Repo, live, project_config, read_live, unique
from tests.web.test_browser import Shots, chromium, server, sign_in  # noqa: F401 - fixtures

SECRET = "tok-4f9a2c71e0"
XSS = "<img src=x onerror=document.body.dataset.pwned=1>"


def wait_end(page, deploy_id: int | str) -> str:
    page.goto(f"/s/default/deploys/{deploy_id}")
    page.wait_for_selector("#console[data-ended]", timeout=120_000)
    return str(page.get_attribute("#console", "data-ended"))


def test_a_failed_deploy_says_what_failed_and_offers_retry_and_rollback(
    server,  # noqa: F811
    chromium,  # noqa: F811
    settings,
    git_host,
    targets,
    tmp_path,
):
    shots = Shots(tmp_path / "screenshots")
    hosts = targets[:3]
    missed = hosts[2]
    repo = Repo(git_host, tmp_path, unique("webact"))
    for n in (1, 2, 3):
        repo.commit({"index.html": f"v{n}\n"}, tag=f"v{n}")
    ready = f"/srv/ready-{repo.name}"
    tasks = {
        "pre_release": (
            f'test -f {ready} || {{ echo "not ready {XSS} $API_TOKEN" >&2; exit 5; }}\n'
        )
    }
    gray = {"batches": [1, 2], "max_failed": 1}
    db = prepare_home(settings)  # the server's own database, with its secret key
    config = project_config(
        repo.name, repo.url, hosts, tasks=tasks, strategy=gray, secrets=["API_TOKEN"]
    )
    config["environments"] = {"staging": config["environments"]["production"]}  # no approval
    projects.apply_project(db, ADMIN, parse_project(config))
    secrets.set_secret(db, ADMIN, repo.name, "staging", "API_TOKEN", SECRET)
    for host in hosts[:2]:
        host.path(ready).write_text("")
    first = deploys.request_deploy(db, ADMIN, repo.name, "staging", "v1")

    # --- a gray release within max_failed: the developer retries the host it missed --------
    dev = sign_in(chromium, server, "dev")
    assert wait_end(dev, first.id) == "success"
    assert missed.address in dev.inner_text("#failure")
    assert live(missed, repo.name) is None
    missed.path(ready).write_text("")
    dev.once("dialog", lambda dialog: dialog.accept())
    dev.click("#retry-failed")
    dev.wait_for_url(f"**/s/default/deploys/{first.id + 1}")
    assert wait_end(dev, first.id + 1) == "success"
    assert {read_live(h, repo.name, "index.html") for h in hosts} == {"v1\n"}

    # --- a plain deploy of v2 everywhere, then v3 fails on one host -------------------------
    del config["environments"]["staging"]["strategy"]
    projects.apply_project(db, ADMIN, parse_project(config))
    second = deploys.request_deploy(db, ADMIN, repo.name, "staging", "v2")
    assert wait_end(dev, second.id) == "success"
    missed.path(ready).unlink()
    third = deploys.request_deploy(db, ADMIN, repo.name, "staging", "v3")
    db.dispose()
    assert wait_end(dev, third.id) == "failed"
    banner = dev.locator("#banner")
    facts = banner.locator("dl.facts").inner_text()
    assert missed.address in facts and "pre_release" in facts and "5" in facts
    stderr = banner.locator("pre.stderr").inner_text()
    assert "not ready" in stderr and XSS in stderr  # shown as text, never as markup
    assert dev.locator("#banner img").count() == 0
    assert dev.evaluate("document.body.dataset.pwned") is None
    assert SECRET not in dev.content() and "***" in stderr
    command = banner.locator("details.command")
    assert not command.locator("pre").first.is_visible()  # behind the toggle
    command.locator("summary").click()
    script = command.locator("pre").last.inner_text()
    assert f"test -f {ready}" in script and "'\"'\"'" not in script  # readable, unquoted
    assert SECRET not in script
    stage = dev.locator("#stages li[data-stage=pre_release]").inner_text()
    assert "2/3" in stage and "(1 failed)" in stage
    err = dev.locator("#log .line.stderr", has_text="not ready").first
    plain = dev.locator("#log .line:not(.stderr)").first
    assert err.evaluate("e => getComputedStyle(e).borderLeftStyle") == "solid"
    assert plain.evaluate("e => getComputedStyle(e).borderLeftStyle") == "none"
    assert dev.locator("#retry").count() == 1  # a developer may deploy here directly
    assert dev.locator("#rollback").count() == 0  # but not roll back
    shots.take(dev, "console-failed-en")
    assert {read_live(h, repo.name, "index.html") for h in hosts} == {"v2\n"}

    # --- a reporter sees the failure and no button, and is refused when posting -------------
    watcher = sign_in(chromium, server, "watcher")
    assert wait_end(watcher, third.id) == "failed"
    assert watcher.locator("#after form").count() == 0
    token = watcher.get_attribute("meta[name=csrf-token]", "content")
    for action in ("retry", "rollback"):
        refused = watcher.request.post(
            f"/s/default/deploys/{third.id}/{action}", form={"csrf": token}
        )
        assert refused.status == 403, action
    forged = dev.request.post(f"/s/default/deploys/{third.id}/retry", form={"csrf": "forged"})
    assert forged.status == 403

    # --- a master rolls the environment back from the failed deploy --------------------------
    lead = sign_in(chromium, server, "lead", locale="zh-CN")
    assert wait_end(lead, third.id) == "failed"
    assert "部署失败" in lead.inner_text("#banner") and "显示命令" in lead.inner_text("#banner")
    shots.take(lead, "console-failed-zh")
    lead.once("dialog", lambda dialog: dialog.accept())
    lead.click("#rollback")
    lead.wait_for_url("**/s/default/deploys/*")
    back = lead.url.rsplit("/", 1)[1]
    assert wait_end(lead, back) == "success"
    assert {read_live(h, repo.name, "index.html") for h in hosts} == {"v1\n"}
    header = lead.inner_text("#summary")
    assert live(hosts[0], repo.name) in header  # the release it went to
    stages = lead.inner_text("#stages")
    assert "verify 0/3" not in stages and "0/3" not in stages

    # --- the console on a phone ----------------------------------------------------------------
    phone = chromium.new_context(
        base_url=server, viewport={"width": 390, "height": 844}, storage_state=None
    )
    small = phone.new_page()
    small.goto("/login")
    small.fill("input[name=username]", "dev")
    small.fill("input[name=password]", "correct horse battery")
    small.click("form[action='/login'] button[type=submit]")
    small.wait_for_url("**/s/default/")
    assert wait_end(small, third.id) == "failed"
    width = small.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width  # nothing makes the page scroll sideways
    shots.take(small, "console-failed-phone-en")
    phone.close()
