"""A paused gray release continued from the console (real Chromium, real server and fleet):
the rollout card follows the deploy without a reload — once it succeeded it offers neither
Abort nor Roll back, and says every batch is done."""

from __future__ import annotations

from ferryman.bootstrap import prepare_home
from ferryman.config.project import parse_project
from ferryman.services import deploys, projects
from tests.helpers import ADMIN, Repo, live, project_config, read_live, unique
from tests.web.test_browser import Shots, chromium, server, sign_in  # noqa: F401 - fixtures


def test_continue_on_a_paused_rollout_leaves_a_card_that_matches_the_deploy(
    server,  # noqa: F811
    chromium,  # noqa: F811
    settings,
    git_host,
    targets,
    tmp_path,
):
    shots = Shots(tmp_path / "screenshots")
    hosts = targets[:3]
    repo = Repo(git_host, tmp_path, unique("webgray"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    config = project_config(
        repo.name,
        repo.url,
        hosts,
        strategy={"canary": 1, "pause": "manual", "batches": [2]},
        tasks={"post_release": "printf 'fetch 10%%\\rfetch 55%%\\rfetch done\\n'\n"},
    )
    config["environments"] = {"staging": config["environments"]["production"]}
    db = prepare_home(settings)
    projects.apply_project(db, ADMIN, parse_project(config))
    deploy = deploys.request_deploy(db, ADMIN, repo.name, "staging", "v1")
    db.dispose()

    lead = sign_in(chromium, server, "lead")
    lead.goto(f"/s/default/deploys/{deploy.id}")
    lead.wait_for_selector("#console[data-ended=paused]", timeout=120_000)
    assert lead.locator("#rollout form[action$='/continue']").count() == 1
    lead.click("#rollout form[action$='/continue'] button")
    lead.wait_for_selector("#console[data-ended=success]", timeout=120_000)
    card = lead.locator("#rollout")
    assert card.locator("form").count() == 0  # no Abort, Continue or Roll back any more
    assert "paused" not in card.inner_text()
    assert lead.locator("#status-badge .s-success").count() == 1
    banner = lead.inner_text("#banner")
    assert "Succeeded." in banner and "took " in banner
    assert f"3 host(s) now serve {live(hosts[0], repo.name)}" in banner
    tabs = lead.eval_on_selector_all("#host-tabs .tab", "ts => ts.map(t => t.dataset.host)")
    assert tabs == ["", *sorted((h.address for h in hosts), key=lambda a: int(a.rsplit(".")[-1]))]
    # output that redraws itself with \r shows what a terminal would end with
    redrawn = lead.locator("#log .line", has_text="fetch")
    assert redrawn.count() == len(hosts)
    assert {x.split("] ")[-1].split(": ", 1)[-1].strip() for x in redrawn.all_inner_texts()} == {
        "fetch done"
    }
    shots.take(lead, "console-rollout-done-en")
    assert {read_live(h, repo.name, "index.html") for h in hosts} == {"v1\n"}
