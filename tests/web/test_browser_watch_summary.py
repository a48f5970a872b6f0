"""The post-deploy watch and the scheduled summary in a real Chromium against a real
``ferryman serve`` (``FERRYMAN_EMBEDDED_WORKER=0``: the records stay as written here, no
check runs): a console says its deploy is watched, another that its watch failed on a host;
the project page says both; a master sets the weekly summary on the notifications page; an
open console shows its watch's failure when it comes, without a reload.
English and Chinese screenshots go to the test's output (and ``$FERRYMAN_SCREENSHOTS``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from ipaddress import ip_network

import pytest
from sqlalchemy import update

from ferryman.bootstrap import prepare_home
from ferryman.config.project import parse_project
from ferryman.db.models import Deploy, DeployWatch
from ferryman.db.session import Database
from ferryman.outbound import Outbound
from ferryman.services import (
    deploy_records,
    deploys,
    notifications,
    projects,
    queue,
    spaces,
    summaries,
    users,
    watch,
)
from ferryman.services.audit import SYSTEM
from tests.helpers import allow_local_repos, running_server
from tests.web.test_browser import PASSWORD, Shots, chromium  # noqa: F401 - a fixture
from tests.web.test_browser_walle import browser_for

HOST = "127.0.140.250:1"  # nothing listens there, and with no worker nothing connects


def _succeeded(db: Database, project: str, env: str) -> int:
    """A deploy of ``project`` that succeeded, as a worker leaves it (its watch starts)."""
    deploy = deploys.request_deploy(db, SYSTEM, f"default:{project}", env, "v1")
    assert queue.claim_next(db, "browser-test") is not None
    deploy_records.set_hosts(db, deploy.id, {HOST: {"status": "success"}})
    with db.transaction() as s:  # the release the worker made and named
        row = s.get(Deploy, deploy.id)
        assert row is not None, f"no deploy #{deploy.id}"
        row.release_name = f"20261130-101500_v1_{project}{deploy.id}"
    deploys.finish(db, deploy.id, "success", None)
    return deploy.id


def _project(db: Database, name: str, on_failure: str) -> None:
    env = {
        "hosts": [HOST],
        "user": "root",
        "webroot": f"/srv/www/{name}",
        "releases": f"/srv/releases/{name}",
        "watch": {"window": "10m", "every": "1m", "on_failure": on_failure},
        "health_check": [{"http": "http://{HOST}/health", "retries": 1, "timeout": "2s"}],
    }
    config = {"project": name, "repo": "file:///nonexistent", "environments": {"staging": env}}
    projects.apply_project(db, SYSTEM, parse_project(config))


def _fail(db: Database, deploy_id: int) -> None:
    """A worker's round of checks that finds the host down (the watch made due first)."""
    with db.transaction() as s:
        s.execute(
            update(DeployWatch)
            .where(DeployWatch.deploy_id == deploy_id)
            .values(next_check_at=datetime(2000, 1, 1, tzinfo=UTC))
        )
    claim = next(c for c in watch.claim_due(db, "browser-test", 60) if c.deploy_id == deploy_id)
    holder = getattr(claim, "holder", "browser-test")
    watch.record_failure(db, claim.watch_id, holder, HOST, "HTTP 502 from /health")


@pytest.fixture
def watched(settings) -> Iterator[tuple[str, int, int]]:
    db = prepare_home(settings)
    users.create_user(db, "lead", PASSWORD)
    spaces.set_member(db, SYSTEM, "default", "lead", "master")
    allow_local_repos(db)
    _project(db, "shop", "rollback")
    _project(db, "blog", "notify")
    watching = _succeeded(db, "shop", "staging")
    failing = _succeeded(db, "blog", "staging")
    _fail(db, failing)
    notifications.save_channel(
        db,
        SYSTEM,
        "default",
        "ops-chat",
        "slack",
        {"url": "http://127.0.140.250:9/hook"},
        outbound=Outbound(allow=(ip_network("127.0.0.0/8"),)),
    )
    db.dispose()
    with running_server(settings.home, env={"FERRYMAN_EMBEDDED_WORKER": "0"}) as url:
        yield url, watching, failing


def test_the_watch_and_the_summary_read_in_the_browser(watched, chromium, settings, tmp_path):  # noqa: F811
    url, watching, failing = watched
    shots = Shots(tmp_path / "screenshots")
    for lang, locale in (("en", "en-US"), ("zh", "zh-CN")):
        lead = browser_for(chromium, url, "lead", locale=locale)
        lead.goto(f"/s/default/deploys/{watching}")
        assert lead.get_attribute("#watch .watch", "data-watch") == "watching"
        shots.take(lead, f"console-watch-{lang}")
        lead.goto(f"/s/default/deploys/{failing}")
        assert lead.get_attribute("#watch .watch", "data-watch") == "failed"
        assert HOST in lead.inner_text("#watch")
        shots.take(lead, f"console-watch-failed-{lang}")
        lead.goto("/s/default/projects/blog")
        assert lead.get_attribute("#watch-staging .watch", "data-watch") == "failed"
        lead.goto("/s/default/notify")
        lead.select_option("#summary-form select[name=channel]", "ops-chat")
        lead.select_option("#summary-form select[name=period]", "weekly")
        lead.click("#summary-form button[type=submit]")
        lead.wait_for_load_state()
        assert "ops-chat" in lead.inner_text("#summary-state")
        shots.take(lead, f"notify-summary-{lang}")
        lead.context.close()
    db = prepare_home(settings)
    try:
        got = summaries.get_summary(db, SYSTEM, "default")
        assert (got["channel"], got["period"], got["enabled"]) == ("ops-chat", "weekly", True)
        # an open console follows its watch to the end: a failed round shows without a reload
        lead = browser_for(chromium, url, "lead")
        lead.goto(f"/s/default/deploys/{watching}")
        assert lead.get_attribute("#watch .watch", "data-watch") == "watching"
        _fail(db, watching)
        lead.wait_for_selector('#watch [data-watch="failed"]')
        assert HOST in lead.inner_text("#watch")
    finally:
        db.dispose()
