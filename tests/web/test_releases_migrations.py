"""The releases page and the ticket preview say which database migrations a rollback crosses;
across an irreversible one the page offers a master a forced rollback with a reason (audited)
and tells a developer it is refused — in the browser's forms, on the real fleet."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ferryman.db.models import AuditEntry
from ferryman.services import tickets
from tests.helpers import finish, live, member, read_live, unique, web_session
from tests.pipeline.test_migration_rollback import _two_releases

pytestmark = pytest.mark.fleet
PASSWORD = "correct horse battery"


def _browser(db, settings, name: str) -> tuple[TestClient, str]:
    return web_session(settings, db, name)


def test_the_releases_page_shows_the_crossing_and_only_a_master_may_force_it_with_a_reason(
    db, settings, git_host, targets, tmp_path
):
    hosts = targets[:2]
    repo, one, two = _two_releases(db, settings, git_host, hosts, tmp_path)
    mona = member(db, unique("mona"), role="master")
    dave = member(db, unique("dave"), role="developer")
    page = f"/s/default/projects/{repo.name}/releases?env=production"

    master, token = _browser(db, settings, mona.username)
    listed = master.get(page).text
    assert "20240102_drop_legacy" in listed  # what v2 applied, marked
    assert 'id="default-rollback-crosses"' in listed
    confirm = master.get(f"{page}&to={one['release']}").text
    crossing = confirm.split('id="crossing"', 1)[1].split("</div>", 1)[0]
    assert "20240102_drop_legacy" in crossing and "irreversible" in crossing
    assert "20240101_create_users" not in crossing  # v1 already had it
    assert 'id="force-migrations"' in confirm and 'name="reason"' in confirm

    developer, dev_token = _browser(db, settings, dave.username)
    seen = developer.get(f"{page}&to={one['release']}").text
    assert 'id="crossing-refused"' in seen and 'id="force-migrations"' not in seen
    posted = developer.post(
        f"/s/default/projects/{repo.name}/releases/rollback",
        data={"csrf": dev_token, "env": "production", "to": one["release"],
              "force_migrations": "1", "reason": "I know better"},
    )  # fmt: skip
    assert posted.status_code == 403
    unforced = master.post(
        f"/s/default/projects/{repo.name}/releases/rollback",
        data={"csrf": token, "env": "production", "to": one["release"]},
    )
    assert unforced.status_code == 409 and "20240102_drop_legacy" in unforced.text
    no_reason = master.post(
        f"/s/default/projects/{repo.name}/releases/rollback",
        data={"csrf": token, "env": "production", "to": one["release"], "force_migrations": "1"},
    )
    assert no_reason.status_code == 422
    assert {live(h, repo.name) for h in hosts} == {two["release"]}  # nothing queued or switched

    forced = master.post(
        f"/s/default/projects/{repo.name}/releases/rollback",
        data={"csrf": token, "env": "production", "to": one["release"],
              "force_migrations": "1", "reason": "legacy table restored"},
        follow_redirects=False,
    )  # fmt: skip
    assert forced.status_code == 303
    deploy_id = int(forced.headers["location"].rsplit("/", 1)[1])
    done = finish(db, settings, deploy_id)
    assert done["status"] == "success", done["error"]
    assert {read_live(h, repo.name, "index.html") for h in hosts} == {"v1\n"}
    with db.read() as s:
        audit = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "rollback.force_migrations")
        ).all()
    assert [(a.actor, a.detail["reason"]) for a in audit] == [
        (mona.username, "legacy table restored")
    ]


def test_the_preview_of_a_ticket_for_older_code_names_the_irreversible_migration(
    db, settings, git_host, targets, tmp_path
):
    hosts = targets[:2]
    repo, one, _two = _two_releases(db, settings, git_host, hosts, tmp_path)
    mona = member(db, unique("mona"), role="master")
    made = asyncio.run(  # v1's code again: a rollback in disguise
        tickets.create_ticket(
            db, settings, mona, repo.name, "production", "v1", title="old code", draft=True
        )
    )
    master, _token = _browser(db, settings, mona.username)
    shown = master.get(f"/s/default/tickets/{made['id']}").text
    preview = shown.split('id="preview-migrations"', 1)[1].split("</div>", 1)[0]
    assert "20240102_drop_legacy" in preview and "irreversible" in preview
    assert one["release"] in preview
