"""The post-deploy watch on the console and the project page (watching until…, passed,
ended because…, failed on a host → rollback), and a space's scheduled summary on its
notifications page: set by masters and owners, refused to a developer with nothing changed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from ferryman.config.project import parse_project
from ferryman.db.models import DeployWatch
from ferryman.services import deploy_records, deploys, projects, queue, summaries, watch
from ferryman.services.audit import SYSTEM
from tests.api.world import SPACE, World, build_world, fresh
from tests.web.test_pages import browser, csrf_of


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("watch"))


def watched_deploy(world: World, on_failure: str = "notify") -> tuple[str, int]:
    """A project whose staging is watched for 10 minutes after a deploy, and a deploy of it
    that succeeded (as a worker leaves it): (project name, deploy id)."""
    name = fresh("watched")
    config = world.config(name)
    staging = config["environments"]["staging"]
    staging["watch"] = {"window": "10m", "on_failure": on_failure}
    staging["health_check"] = [{"http": "http://{HOST}:1/health", "retries": 1, "timeout": "2s"}]
    project, _ = projects.apply_project(world.db, SYSTEM, parse_project(config))
    deploy = deploys.request_deploy(world.db, SYSTEM, str(project.id), "staging", "v1")
    assert queue.claim_next(world.db, "web-test") is not None
    deploy_records.set_hosts(world.db, deploy.id, {"127.0.0.2:1": {"status": "success"}})
    deploys.finish(world.db, deploy.id, "success", None)
    return name, deploy.id


def fail_the_watch(world: World, deploy_id: int) -> None:
    """A worker's round of checks that finds the host down (the watch made due first)."""
    with world.db.transaction() as s:
        s.execute(
            update(DeployWatch)
            .where(DeployWatch.deploy_id == deploy_id)
            .values(next_check_at=datetime(2000, 1, 1, tzinfo=UTC))
        )
    claimed = [c for c in watch.claim_due(world.db, "web-test", 60) if c.deploy_id == deploy_id]
    assert claimed
    holder = getattr(claimed[0], "holder", "web-test")  # the claim's own token, where it has one
    assert (
        watch.record_failure(world.db, claimed[0].watch_id, holder, "127.0.0.2:1", "HTTP 502")
        == "failed"
    )


def test_the_console_and_the_project_page_say_the_deploy_is_being_watched(world):
    name, deploy_id = watched_deploy(world)
    reporter = browser(world, "reporter")
    console = reporter.get(f"/s/{SPACE}/deploys/{deploy_id}").text
    assert 'id="watch"' in console and 'data-watch="watching"' in console
    assert "Health checks every 30.0s until" in console
    assert "no automatic rollback" in console
    project = reporter.get(f"/s/{SPACE}/projects/{name}").text
    assert 'id="watch-staging"' in project and 'data-watch="watching"' in project
    assert 'id="watch-production"' not in project
    chinese = browser(world, "reporter", language="zh-CN,zh;q=0.9")
    assert "部署后观察" in chinese.get(f"/s/{SPACE}/deploys/{deploy_id}").text


def test_a_failed_watch_names_the_host_and_links_the_rollback_it_queued(world):
    name, _first = watched_deploy(world, on_failure="rollback")
    _name, deploy_id = watched_deploy_again(world, name)
    fail_the_watch(world, deploy_id)
    rows = watch.for_deploy(world.db, deploy_id)
    assert rows[0]["status"] == "failed"
    master = browser(world, "master")
    console = master.get(f"/s/{SPACE}/deploys/{deploy_id}").text
    assert 'data-watch="failed"' in console
    assert "A check failed on host 127.0.0.2:1:" in console and "HTTP 502" in console
    # nothing to go back to here (no earlier good release is recorded): said, not hidden
    assert rows[0]["rollback_id"] is None and "no rollback could be queued" in console
    project = master.get(f"/s/{SPACE}/projects/{name}").text
    assert 'data-watch="failed"' in project and "127.0.0.2:1" in project
    # where the rollback was queued (as record_failure writes it), the console links it
    rollback = world.queued_deploy()
    with world.db.transaction() as s:
        s.execute(
            update(DeployWatch)
            .where(DeployWatch.deploy_id == deploy_id)
            .values(rollback_id=rollback)
        )
    console = master.get(f"/s/{SPACE}/deploys/{deploy_id}").text
    assert f'/deploys/{rollback}" class="watch-rollback"' in console
    chinese = browser(world, "master", language="zh-CN,zh;q=0.9")
    said = chinese.get(f"/s/{SPACE}/deploys/{deploy_id}").text
    assert "主机 127.0.0.2:1 上的检查失败" in said and f"回滚 #{rollback} 已排队" in said


def watched_deploy_again(world: World, name: str) -> tuple[str, int]:
    """A second successful deploy of ``name``'s staging (the first watch ends)."""
    deploy = deploys.request_deploy(world.db, SYSTEM, f"{SPACE}:{name}", "staging", "v1")
    assert queue.claim_next(world.db, "web-test") is not None
    deploy_records.set_hosts(world.db, deploy.id, {"127.0.0.2:1": {"status": "success"}})
    deploys.finish(world.db, deploy.id, "success", None)
    return name, deploy.id


def test_a_watch_ended_by_a_newer_deploy_says_why(world):
    name, first = watched_deploy(world)
    watched_deploy_again(world, name)
    console = browser(world, "developer").get(f"/s/{SPACE}/deploys/{first}").text
    assert 'data-watch="ended"' in console and "Ended because:" in console


def test_a_master_sets_the_weekly_summary_and_turns_it_off(world):
    channel = world.new_channel_named()
    master = browser(world, "master")
    page = master.get(f"/s/{SPACE}/notify").text
    assert 'id="summary-form"' in page and "No scheduled summary is sent now." in page
    token = csrf_of(master)
    saved = master.post(
        f"/s/{SPACE}/notify/summary",
        data={"csrf": token, "channel": channel, "period": "weekly", "enabled": "1"},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    got = summaries.get_summary(world.db, SYSTEM, SPACE)
    assert (got["channel"], got["period"], got["enabled"]) == (channel, "weekly", True)
    shown = master.get(f"/s/{SPACE}/notify").text
    assert f"The weekly summary goes to {channel}." in shown
    off = master.post(
        f"/s/{SPACE}/notify/summary",
        data={"csrf": token, "channel": channel, "period": "weekly"},
        follow_redirects=False,
    )
    assert off.status_code == 303
    assert summaries.get_summary(world.db, SYSTEM, SPACE)["enabled"] is False
    chinese = browser(world, "owner", language="zh-CN,zh;q=0.9").get(f"/s/{SPACE}/notify").text
    assert "定期汇总报表" in chinese and "每周" in chinese


def test_a_bad_summary_form_says_why_and_keeps_what_was_chosen(world):
    channel = world.new_channel_named()
    before = summaries.get_summary(world.db, SYSTEM, SPACE)
    owner = browser(world, "owner")
    token = csrf_of(owner)
    refused = owner.post(
        f"/s/{SPACE}/notify/summary",
        data={"csrf": token, "channel": channel, "period": "hourly", "enabled": "1"},
    )
    assert refused.status_code == 422 and "Choose daily or weekly." in refused.text
    assert f'<option value="{channel}" selected>' in refused.text
    missing = owner.post(
        f"/s/{SPACE}/notify/summary",
        data={"csrf": token, "channel": "gone", "period": "daily", "enabled": "1"},
    )
    assert missing.status_code == 404 and "no notification channel" in missing.text
    assert summaries.get_summary(world.db, SYSTEM, SPACE) == before


def test_a_developer_sees_no_summary_form_and_posting_it_changes_nothing(world):
    channel = world.new_channel_named()
    before = summaries.get_summary(world.db, SYSTEM, SPACE)
    developer = browser(world, "developer")
    assert developer.get(f"/s/{SPACE}/notify").status_code == 403
    token = csrf_of(developer)
    refused = developer.post(
        f"/s/{SPACE}/notify/summary",
        data={"csrf": token, "channel": channel, "period": "daily", "enabled": "1"},
    )
    assert refused.status_code == 403
    assert summaries.get_summary(world.db, SYSTEM, SPACE) == before
    forged = browser(world, "master").post(
        f"/s/{SPACE}/notify/summary",
        data={"csrf": "forged", "channel": channel, "period": "daily", "enabled": "1"},
    )
    assert forged.status_code == 403
    assert summaries.get_summary(world.db, SYSTEM, SPACE) == before
