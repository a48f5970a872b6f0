"""Spaces, members, servers, environments, users and tokens through the API — and bad input
refused with a stable code and nothing written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ferryman.app import create_app
from ferryman.db.models import AuditEntry, Project, Server, Ticket
from ferryman.services import spaces, users
from ferryman.services.audit import SYSTEM
from tests.api.world import World, build_world

PASSWORD = "correct horse battery"


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    w = build_world(tmp_path, db_url)
    yield w
    w.db.dispose()


@pytest.fixture
def api(world: World) -> Iterator[Any]:
    with TestClient(create_app(world.settings, world.db, embedded_worker=False)) as client:

        def call(who: str, method: str, url: str, body: Any = None, **kw: Any) -> Any:
            headers = {"Authorization": f"Bearer {world.tokens[who]}"} if who else {}
            return client.request(method, "/api/v1" + url, json=body, headers=headers, **kw)

        yield call


def counts(world: World) -> tuple[int, ...]:
    with world.db.read() as s:
        return tuple(
            s.scalar(select(func.count()).select_from(model)) or 0
            for model in (AuditEntry, Ticket, Project, Server)
        )


# Tests whose subject is decided in Python before or without a query of its own (request
# validation, token scopes, the CSRF check, git refs, password hashing) run on SQLite only;
# the rest — lookups across spaces, labels, copies, owners, token expiry, sign-in limits,
# stats per day — run on every backend, where their SQL differs.
ONE_BACKEND = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@ONE_BACKEND
@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/tickets", {"project": "site", "env": "production", "ref": "v1", "title": "t", "x": 1}),
        ("/tickets", {"project": "site", "env": "production", "ref": "v1", "title": "t" * 201}),
        ("/tickets", {"project": "site", "env": "production", "ref": "$(touch x)", "title": "t"}),
        (
            "/tickets",
            {"project": "site", "env": "production", "ref": "--upload-pack=x", "title": "t"},
        ),
        ("/tickets", {"project": "site", "env": "production", "ref": "v1", "title": " "}),
        ("/servers", {"space": "acme", "name": "web1", "address": "-oProxyCommand=x"}),
        ("/servers", {"space": "acme", "name": "web1", "address": "10.0.0.1:22"}),
        ("/servers", {"space": "acme", "name": "web1", "address": "10.0.0.1", "labels": ["a b"]}),
        ("/servers", {"space": "acme", "name": "../x", "address": "10.0.0.1"}),
        ("/environments", {"space": "acme", "name": "qa", "variables": {"PROJECT": "x"}}),
        ("/environments", {"space": "acme", "name": "qa", "variables": {"A B": "x"}}),
        ("/environments", {"space": "acme", "name": "qa", "variables": {"A": "x\x00"}}),
        ("/spaces/acme/members", {"user": "reporter-user", "role": "king"}),
        ("/tokens", {"name": "t", "scopes": ["admin"]}),
    ],
)
def test_bad_input_gets_a_4xx_with_a_stable_code_and_writes_nothing(api, world, url, body):
    before = counts(world)
    r = api("super", "POST", url, body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] in ("invalid_input", "config_invalid")
    assert counts(world) == before


def test_ids_from_another_space_are_not_found_and_change_nothing(api, world):
    server = world.new_server()
    ticket = world.new_ticket()
    before = counts(world)
    for method, url, body in [
        ("GET", f"/servers/{server}", None),
        ("PATCH", f"/servers/{server}", {"labels": ["x"]}),
        ("DELETE", f"/servers/{server}", None),
        ("GET", f"/tickets/{ticket}", None),
        ("POST", f"/tickets/{ticket}/approve", None),
        ("GET", f"/projects/{world.project_id}", None),
        ("GET", "/projects/acme:site", None),
        ("GET", "/projects/site", None),
        (
            "POST",
            "/tickets",
            {"project": str(world.project_id), "env": "production", "ref": "v1", "title": "t"},
        ),
    ]:
        r = api("other", method, url, body)
        assert r.status_code == 404, (url, r.text)
        assert r.json()["error"]["message"].startswith("no ")  # as if it did not exist
    assert counts(world) == before


@ONE_BACKEND
def test_a_project_may_not_name_an_environment_its_space_lacks(api, world):
    config = world.config("newapp")
    config["environments"]["qa"] = config["environments"]["staging"]
    r = api("master", "POST", "/projects", config)
    assert r.status_code == 422
    assert any(
        e["loc"] == ["environments", "qa"]
        and e["message"].startswith("space 'acme' has no such environment")
        for e in r.json()["error"]["details"]["errors"]
    )


def test_projects_name_servers_and_labels_and_get_their_addresses(api, world):
    api(
        "master",
        "POST",
        "/servers",
        {"space": "acme", "name": "web1", "address": "10.0.0.1", "labels": ["canary", "region=bj"]},
    )
    api(
        "master",
        "POST",
        "/servers",
        {
            "space": "acme",
            "name": "web2",
            "address": "10.0.0.2",
            "port": 2222,
            "user": "www",
            "labels": ["region=bj"],
        },
    )
    api(
        "master",
        "POST",
        "/servers",
        {"space": "acme", "name": "job1", "address": "10.0.0.3", "labels": ["job-node"]},
    )
    config = world.config("labelled")
    env = config["environments"]["staging"]
    env.update(hosts=["10.0.0.9"], servers=["job1"], labels=["region=bj"])
    assert api("master", "POST", "/projects", config).status_code == 200
    rel = api("reporter", "GET", "/projects/labelled/envs/staging/releases").json()
    assert [h["host"] for h in rel["hosts"]] == [
        "10.0.0.9",
        "10.0.0.3",
        "10.0.0.1",
        "10.0.0.2:2222",
    ]
    env.update(servers=["nosuch"], labels=["region=sh"])
    found = api("master", "POST", "/projects", config).json()["error"]["details"]["errors"]
    bad = ["/".join(map(str, e["loc"])) + ": " + e["message"] for e in found]
    assert "environments/staging/servers/0: no server 'nosuch'" in bad
    assert "environments/staging/labels: no server has all of region=sh" in bad
    only = api("reporter", "GET", "/servers?space=acme&label=canary").json()
    assert [s["name"] for s in only] == ["web1"]


def test_a_project_is_copied_within_its_space_and_into_another_the_user_masters(api, world):
    spaces.set_member(world.db, SYSTEM, "other", "master-user", "master")
    here = api("master", "POST", f"/projects/{world.project_id}/copy", {"name": "site-copy"})
    assert here.status_code == 201 and here.json()["space"] == "acme"
    # the copy's paths name the copy (/srv/www/site → /srv/www/site-copy), not the original
    shown = api("master", "GET", f"/projects/{here.json()['id']}").json()
    copied = shown["config"]["environments"]["production"]
    assert (copied["webroot"], copied["releases"]) == (
        "/srv/www/site-copy",
        "/srv/releases/site-copy",
    )
    # under the same name the copy would keep the original's paths on its hosts: refused
    same = api(
        "master", "POST", f"/projects/{world.project_id}/copy", {"name": "site", "space": "other"}
    )
    assert same.status_code == 422 and "overlap" in same.text
    config = world.config("site", "other")
    for env in config["environments"].values():
        env["webroot"], env["releases"] = "/srv/www/other-site", "/srv/releases/other-site"
    there = api("master", "POST", "/projects", config)
    assert there.status_code == 200 and there.json()["space"] == "other", there.text
    ambiguous = api("master", "GET", "/projects/site")
    assert ambiguous.status_code == 409 and "SPACE:site" in ambiguous.json()["error"]["message"]
    assert api("master", "GET", "/projects/other:site").json()["config"]["space"] == "other"
    assert api("developer", "GET", "/projects/site").status_code == 200  # only one visible
    refused = api("developer", "POST", f"/projects/{world.project_id}/copy", {"name": "x"})
    assert refused.status_code == 403


@ONE_BACKEND
def test_refs_list_branches_tags_newest_first_and_commits_with_author(api, world):
    data = api("reporter", "GET", f"/projects/{world.project_id}/refs").json()
    assert [b["name"] for b in data["branches"]] == ["master"]
    assert [t["name"] for t in data["tags"]] == ["v1"]
    assert data["commits"][0]["author"] == "Dev" and data["commits"][0]["message"] == "first"
    bad = api("reporter", "GET", f"/projects/{world.project_id}/refs?branch=--all")
    assert bad.status_code == 422


def test_a_project_role_override_raises_or_lowers_one_members_rights(api, world):
    project = world.new_project()
    name = api("owner", "GET", f"/projects/{project}").json()["name"]
    api(
        "owner", "POST", f"/projects/{project}/members", {"user": "reporter-user", "role": "master"}
    )
    api(
        "owner", "POST", f"/projects/{project}/members", {"user": "master-user", "role": "reporter"}
    )
    config = world.config(name)
    assert api("reporter", "POST", "/projects", config).status_code == 200
    assert api("master", "POST", "/projects", config).status_code == 403
    assert api("master", "POST", "/projects", world.config("site")).status_code == 200
    assert api("reporter", "POST", "/projects", world.config("site")).status_code == 403
    overrides = api("reporter", "GET", f"/projects/{project}/members").json()
    assert {(o["username"], o["role"]) for o in overrides} == {
        ("reporter-user", "master"),
        ("master-user", "reporter"),
    }


def test_the_last_owner_of_a_space_cannot_be_removed_or_demoted(api, world):
    assert api("owner", "DELETE", "/spaces/acme/members/owner-user").status_code == 409
    assert (
        api("owner", "PUT", "/spaces/acme/members/owner-user", {"role": "master"}).status_code
        == 409
    )
    api("owner", "POST", "/spaces/acme/members", {"user": "master-user", "role": "owner"})
    assert (
        api("owner", "PUT", "/spaces/acme/members/owner-user", {"role": "master"}).status_code
        == 200
    )


@ONE_BACKEND
def test_a_read_only_token_reads_but_cannot_write(api, world):
    token = users.create_token(world.db, world.actors["master"], "ro", ["read"])["token"]
    world.tokens["ro"] = token
    assert api("ro", "GET", "/projects?space=acme").status_code == 200
    r = api("ro", "POST", "/servers", {"space": "acme", "name": "w", "address": "10.0.0.1"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"


def test_expired_and_revoked_tokens_and_disabled_users_are_refused(api, world):
    from datetime import timedelta

    from ferryman.db.models import ApiToken, utcnow

    created = api("developer", "POST", "/tokens", {"name": "short", "expires_in_days": 1}).json()
    world.tokens["short"] = created["token"]
    assert api("short", "GET", "/me").status_code == 200
    with world.db.transaction() as s:
        row = s.get(ApiToken, created["id"])
        row.expires_at = utcnow() - timedelta(seconds=1)
    expired = api("short", "GET", "/me")
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]

    spare = api("developer", "POST", "/tokens", {"name": "spare"}).json()
    world.tokens["spare"] = spare["token"]
    assert api("developer", "DELETE", f"/tokens/{spare['id']}").status_code == 204
    assert api("spare", "GET", "/me").status_code == 401

    assert api("super", "PATCH", "/users/developer-user", {"is_active": False}).status_code == 200
    assert api("developer", "GET", "/me").status_code == 401
    login = api("", "POST", "/auth/login", {"username": "developer-user", "password": PASSWORD})
    assert login.status_code == 401


def test_sign_in_is_rate_limited_after_repeated_failures(api, world):
    for _ in range(10):
        r = api("", "POST", "/auth/login", {"username": "reporter-user", "password": "wrong"})
        assert r.status_code == 401
    r = api("", "POST", "/auth/login", {"username": "reporter-user", "password": PASSWORD})
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    other = api("", "POST", "/auth/login", {"username": "owner-user", "password": PASSWORD})
    assert other.status_code == 200


@ONE_BACKEND
def test_users_change_their_own_password_with_the_old_one(api, world):
    wrong = api(
        "reporter",
        "POST",
        "/me/password",
        {"old_password": "nope", "new_password": "new password 1"},
    )
    assert wrong.status_code == 401
    ok = api(
        "reporter",
        "POST",
        "/me/password",
        {"old_password": PASSWORD, "new_password": "new password 1"},
    )
    assert ok.status_code == 204
    login = api(
        "", "POST", "/auth/login", {"username": "reporter-user", "password": "new password 1"}
    )
    assert login.status_code == 200


def test_stats_count_deploys_rollbacks_and_durations_per_day(api, world):
    from datetime import timedelta

    from ferryman.db.models import Deploy, utcnow

    ids = [world.queued_deploy() for _ in range(3)]
    durations = [10, 20, 60]
    with world.db.transaction() as s:
        for deploy_id, seconds, status in zip(
            ids, durations, ["success", "success", "failed"], strict=True
        ):
            row = s.get(Deploy, deploy_id)
            row.started_at = utcnow() - timedelta(seconds=seconds)
            row.finished_at = utcnow()
            row.status = status
    data = api("reporter", "GET", "/stats?space=acme&period=week").json()
    assert data["total"]["deploys"] == 3
    assert (data["total"]["successes"], data["total"]["failures"]) == (2, 1)
    assert data["total"]["median_seconds"] == pytest.approx(20, abs=1)
    assert data["total"]["p95_seconds"] == pytest.approx(60, abs=1)
    assert len(data["series"]) == 3  # one project each, same week
    assert all(row["env"] == "staging" and row["deploys"] == 1 for row in data["series"])
    assert api("other", "GET", "/stats?space=acme").status_code == 404


@ONE_BACKEND
def test_a_browser_session_is_a_cookie_whose_writes_need_the_csrf_token(world):
    with TestClient(create_app(world.settings, world.db, embedded_worker=False)) as browser:
        r = browser.post(
            "/api/v1/auth/session", json={"username": "master-user", "password": PASSWORD}
        )
        assert r.status_code == 200
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        csrf = r.json()["csrf_token"]
        assert browser.get("/api/v1/me").json()["username"] == "master-user"
        body = {"space": "acme", "name": "web9", "address": "10.0.0.9"}
        forged = browser.post("/api/v1/servers", json=body)
        assert forged.status_code == 403 and forged.json()["error"]["code"] == "csrf_failed"
        made = browser.post("/api/v1/servers", json=body, headers={"X-CSRF-Token": csrf})
        assert made.status_code == 201
        assert (
            browser.delete("/api/v1/auth/session", headers={"X-CSRF-Token": csrf}).status_code
            == 204
        )
        assert browser.get("/api/v1/me").status_code == 401
