"""The project page follows a post-deploy watch without a reload (real Chromium, real
``ferryman serve`` with its embedded worker, the real fleet): after a deploy with ``watch:``
succeeds, the page opened on the project says its environment is watched; when the host's
health check starts failing, the same page — never reloaded — says the watch failed on that
host, as the console does."""

from __future__ import annotations

from ferryman.bootstrap import prepare_home
from ferryman.config.project import parse_project
from ferryman.services import deploys, projects
from tests.helpers import ADMIN, Repo, project_config, unique
from tests.web.test_browser import Shots, chromium, server, sign_in  # noqa: F401 - fixtures
from tests.web.test_browser_failures import wait_end


def test_the_project_page_follows_a_post_deploy_watch_without_a_reload(
    server,  # noqa: F811
    chromium,  # noqa: F811
    settings,
    git_host,
    targets,
    tmp_path,
):
    shots = Shots(tmp_path / "screenshots")
    host = targets[0]
    repo = Repo(git_host, tmp_path, unique("pwatch"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    healthy = f"/srv/healthy-{repo.name}"
    host.path(healthy).write_text("")
    config = project_config(
        repo.name,
        repo.url,
        [host],
        health_check=[{"command": f"test -f {healthy}", "retries": 1, "timeout": "5s"}],
        watch={"window": "1h", "every": "1s", "on_failure": "notify"},
    )
    config["environments"] = {"staging": config["environments"]["production"]}  # no approval
    db = prepare_home(settings)
    projects.apply_project(db, ADMIN, parse_project(config))
    deploy = deploys.request_deploy(db, ADMIN, repo.name, "staging", "v1")
    db.dispose()

    lead = sign_in(chromium, server, "lead")
    assert wait_end(lead, deploy.id) == "success"
    lead.goto(f"/s/default/projects/{repo.name}")
    watch = lead.locator("#watch-staging .watch")
    assert watch.get_attribute("data-watch") == "watching"
    shots.take(lead, "project-watch-watching-en")
    lead.evaluate("window.loadedOnce = 'this page'")  # gone if the page were reloaded

    host.path(healthy).unlink()  # the next round of checks fails on the host
    lead.wait_for_selector('#watch-staging [data-watch="failed"]', timeout=90_000)
    assert lead.evaluate("window.loadedOnce") == "this page"
    shown = lead.inner_text("#watch-staging")
    assert host.address in shown and f"#{deploy.id}" in shown
    assert lead.locator("#watch-staging time").first.get_attribute("title")  # localised again
    shots.take(lead, "project-watch-failed-en")
