"""Scheduled summaries (报表汇总): a space's day or week of deploys, sent once per period to
one of its channels — here a webhook received by a real HTTP server on loopback — even when
two workers look at once; only masters set it."""

from __future__ import annotations

import asyncio
import http.server
import ipaddress
import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from ferryman.config.project import parse_project
from ferryman.db.models import Deploy, HostState
from ferryman.errors import PermissionDenied, ValidationError
from ferryman.notify import dispatcher
from ferryman.outbound import Outbound
from ferryman.services import deploys, notifications, projects, summaries
from ferryman.services.audit import SYSTEM
from tests.helpers import ADMIN, member, unique

NET = os.environ.get("FERRYMAN_TEST_NET", "127.0.100")
LOOPBACK = Outbound(allow=(ipaddress.ip_network("127.0.0.0/8"),))


@pytest.fixture
def receiver() -> Iterator[tuple[list[dict], str]]:
    got: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer((f"{NET}.210", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield got, f"http://{NET}.210:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def _project(db) -> str:
    name = unique("sum")
    config = {
        "project": name,
        "repo": "https://git.invalid/x.git",
        "environments": {
            "production": {
                "hosts": ["127.0.0.1:1"],
                "webroot": f"/srv/www/{name}",
                "releases": f"/srv/releases/{name}",
            }
        },
    }
    projects.apply_project(db, ADMIN, parse_project(config))
    return name


def _ran(db, project: str, kind: str, status: str, at: datetime, seconds: float) -> None:
    """A deploy as a worker leaves it: asked for, run for ``seconds``, ended ``status``."""
    if kind == "rollback":
        with db.transaction() as s:  # r1 is live on a host, put there by no deploy on record
            project_id = projects.find_project(s, ADMIN, project, "project.read").id
            s.add(
                HostState(
                    project_id=project_id,
                    env="production",
                    host="127.0.0.1:1",
                    current_release="r1",
                )
            )
        asked = deploys.request_rollback(db, ADMIN, project, "production", "r1")
    else:
        asked = deploys.request_deploy(db, ADMIN, project, "production", "v1")
    with db.transaction() as s:
        row = s.get(Deploy, asked.id)
        row.status = status
        row.created_at, row.started_at = at, at
        row.finished_at = at + timedelta(seconds=seconds)


def test_a_daily_summary_reaches_its_channel_once_even_with_two_workers(db, settings, receiver):
    got, url = receiver
    notifications.save_channel(
        db, ADMIN, "default", "ops", "webhook", {"url": url}, outbound=LOOPBACK
    )
    setting = summaries.set_summary(db, ADMIN, "default", channel="ops", period="daily")
    assert setting["enabled"] and setting["period"] == "daily"

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day = today + timedelta(hours=9)  # the day the report covers (it ends at midnight)
    web, api = _project(db), _project(db)
    _ran(db, web, "deploy", "success", day, 30)
    _ran(db, web, "deploy", "failed", day, 90)
    _ran(db, api, "deploy", "failed", day, 10)
    _ran(db, api, "deploy", "failed", day, 20)
    _ran(db, api, "rollback", "success", day, 2)
    _ran(db, web, "deploy", "success", day - timedelta(days=1), 999)  # the day before

    assert summaries.send_due(db, now=day + timedelta(hours=1)) == []  # the day is not over
    tomorrow = today + timedelta(days=1, minutes=5)
    results: list[list[str]] = []
    start = threading.Barrier(2)

    def worker() -> None:
        start.wait()
        results.append(summaries.send_due(db, now=tomorrow))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(len(r) for r in results) == [0, 1], results  # one of them sent it
    assert summaries.send_due(db, now=tomorrow) == []

    asyncio.run(dispatcher.deliver_due(db, settings, LOOPBACK))
    [body] = got
    assert body["event"] == "report.summary"
    data = body["data"]
    assert data["period"] == today.date().isoformat()
    assert (data["deploys"], data["succeeded"], data["failed"]) == (4, 1, 3)
    assert data["rollbacks"] == 1 and data["duration_max"] == 90
    assert data["top_failing"] == [
        {"project": api, "failed": 2},
        {"project": web, "failed": 1},
    ]
    assert "4 deploys: 1 succeeded, 3 failed" in body["text"]
    assert f"{api} (2)" in body["text"]
    shown = summaries.get_summary(db, ADMIN, "default")
    assert shown["last_period"] == today.date().isoformat() and shown["last_sent_at"]


def test_a_weekly_summary_covers_the_last_iso_week_and_starts_after_it_is_set(db, receiver):
    _got, url = receiver
    notifications.save_channel(
        db, ADMIN, "default", "ops", "webhook", {"url": url}, outbound=LOOPBACK
    )
    now = datetime.now(UTC)
    summaries.set_summary(db, ADMIN, "default", channel="ops", period="weekly")
    assert summaries.send_due(db, now=now) == []  # the week before it was set: not sent
    next_week = now + timedelta(days=7)
    [sent] = summaries.send_due(db, now=next_week)
    year, week, _ = (next_week - timedelta(days=7)).isocalendar()
    assert sent == f"default/{year}-W{week:02d}"


def test_only_masters_set_a_summary_and_only_to_a_channel_of_their_space(db, receiver):
    _got, url = receiver
    notifications.save_channel(
        db, ADMIN, "default", "ops", "webhook", {"url": url}, outbound=LOOPBACK
    )
    developer = member(db, unique("dev"), role="developer")
    with pytest.raises(PermissionDenied):
        summaries.set_summary(db, developer, "default", channel="ops", period="daily")
    with pytest.raises(ValidationError):
        summaries.set_summary(db, ADMIN, "default", channel="ops", period="hourly")
    from ferryman.errors import NotFound

    with pytest.raises(NotFound):
        summaries.set_summary(db, ADMIN, "default", channel="elsewhere", period="daily")
    assert summaries.get_summary(db, SYSTEM, "default")["enabled"] is False
