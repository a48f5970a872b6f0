"""The REST API: token auth, stable error codes, and bad input refused before anything runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ferryman.app import create_app
from ferryman.testing.fleet import FleetHost
from tests.helpers import Repo, create_admin, finish, project_config, unique


@pytest.fixture
def client(db, settings) -> Iterator[TestClient]:
    create_admin(db)
    app = create_app(settings, db, embedded_worker=False)
    with TestClient(app) as c:
        token = c.post(
            "/api/v1/auth/login", json={"username": "alice", "password": "correct horse battery"}
        ).json()
        c.headers["Authorization"] = f"Bearer {token['token']}"
        yield c


def test_requests_without_a_valid_token_are_refused_with_401(db, settings):
    app = create_app(settings, db, embedded_worker=False)
    with TestClient(app) as c:
        assert c.get("/api/v1/projects").json()["error"]["code"] == "unauthenticated"
        r = c.get("/api/v1/projects", headers={"Authorization": "Bearer fm_nope"})
        assert r.status_code == 401


def test_a_wrong_password_gets_401_and_no_token(client):
    r = client.post("/api/v1/auth/login", json={"username": "alice", "password": "wrong"})
    assert r.status_code == 401
    assert "token" not in r.json()


def test_an_invalid_project_names_the_path_of_every_error(client):
    config = project_config("web", "ssh://git@10.0.0.12/group/website.git", [])
    config["environments"]["production"]["hosts"] = ["10.0.0.13", "ok.example", "a b"]
    config["environments"]["production"]["colour"] = "blue"
    r = client.post("/api/v1/projects", json=config)
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "config_invalid"
    items = [
        {k: item[k] for k in ("loc", "code", "message")} for item in error["details"]["errors"]
    ]
    assert {
        "loc": ["environments", "production", "hosts", 2],
        "code": "invalid",
        "message": "not a host: 'a b'",
    } in items
    assert {
        "loc": ["environments", "production", "colour"],
        "code": "unknown_key",
        "message": "unknown key",
    } in items
    assert "environments/production/hosts/2: not a host: 'a b'" in error["message"]


@pytest.mark.parametrize(
    "host",
    [
        "-oProxyCommand=touch /tmp/ferryman-pwned",
        "a b",
        "host;touch /tmp/x",
        "h\nx",
        "$(touch /tmp/x)",
    ],
)
def test_hostnames_that_could_become_options_or_shell_are_refused(client, host):
    config = project_config("web", "ssh://git@10.0.0.12/group/website.git", [])
    config["environments"]["production"]["hosts"] = [host]
    r = client.post("/api/v1/projects", json=config)
    assert r.status_code == 422
    assert "hosts/0: not a host" in r.json()["error"]["message"]


@pytest.mark.fleet
@pytest.mark.parametrize(
    "ref",
    [
        "--upload-pack=touch {marker}",
        "$(touch {marker})",
        "a;touch {marker}",
        "v1\ntouch {marker}",
        "`touch {marker}`",
        "-c",
        "../../etc",
    ],
)
def test_refs_that_could_become_options_or_shell_are_refused_and_nothing_runs(
    client, db, git_host: FleetHost, targets, tmp_path: Path, ref
):
    marker = tmp_path / "marker"
    repo = Repo(git_host, tmp_path, unique("inj"))
    repo.commit({"index.html": "v1\n"})
    tasks = {"pre_deploy": f"touch {marker}\n"}
    assert (
        client.post(
            "/api/v1/projects", json=project_config(repo.name, repo.url, targets, tasks=tasks)
        ).status_code
        == 200
    )
    r = client.post(
        f"/api/v1/projects/{repo.name}/deploys",
        json={"env": "production", "ref": ref.format(marker=marker)},
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_input"
    assert client.get("/api/v1/deploys").json() == []
    assert not marker.exists()


@pytest.mark.fleet
def test_deploy_logs_steps_and_releases_are_served(
    client, db, settings, git_host, targets, tmp_path
):
    repo = Repo(git_host, tmp_path, unique("api"))
    repo.commit({"index.html": "v1\n"})
    client.post("/api/v1/projects", json=project_config(repo.name, repo.url, targets[:2]))
    created = client.post(
        f"/api/v1/projects/{repo.name}/deploys", json={"env": "production", "ref": "master"}
    )
    assert created.status_code == 201
    deploy_id = created.json()["id"]
    assert created.json()["status"] == "queued"
    busy = client.post(
        f"/api/v1/projects/{repo.name}/deploys", json={"env": "production", "ref": "master"}
    )
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "conflict"
    finish(db, settings, deploy_id)
    deploy = client.get(f"/api/v1/deploys/{deploy_id}").json()
    assert deploy["status"] == "success"
    names = [s["name"] for s in deploy["stages"]]
    assert names == [
        "prepare",
        "pre_deploy",
        "checkout",
        "post_deploy",
        "transfer",
        "pre_release",
        "switch",
        "post_release",
        "cleanup",
    ]
    assert all(s["duration"] is not None for s in deploy["stages"])
    assert deploy["stages"][4]["done"] == 2
    logs = client.get(f"/api/v1/deploys/{deploy_id}/logs").json()
    assert any("full zstd package" in line["text"] for line in logs["lines"])
    steps = client.get(f"/api/v1/deploys/{deploy_id}/steps").json()
    switch = [s for s in steps if s["stage"] == "switch"]
    assert {s["host"] for s in switch} == {t.address for t in targets[:2]}
    assert all(s["exit_status"] == 0 for s in switch)
    rel = client.get(f"/api/v1/projects/{repo.name}/envs/production/releases").json()
    assert [h["live"] for h in rel["hosts"]] == [deploy["release"]] * 2
    assert client.get("/api/v1/deploys/999999").status_code == 404
