"""A release request of the pull-mode platform, end to end on the fleet: a master asks for a
version with its dependencies, build, unit tests and start/stop commands; another master
approves the ticket it made; it deploys, and every command ran where a hook of its kind runs
(build and tests in the deploy host's sandbox, stop and start on every host)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ferryman.app import create_app
from ferryman.services import spaces, users
from ferryman.services.audit import SYSTEM
from tests.conftest import set_approval
from tests.helpers import Repo, finish, project_config, read_live, unique

pytestmark = pytest.mark.fleet
PASSWORD = "correct horse battery"


@pytest.fixture
def call(db, settings) -> Iterator[Any]:
    set_approval(db, "production", True)
    headers = {}
    for name, role in (("dev", "developer"), ("lead", "master"), ("lead2", "master")):
        actor = users.create_user(db, name, PASSWORD)
        spaces.set_member(db, SYSTEM, "default", name, role)
        token = users.create_token(db, actor, "test", ["read", "write"])["token"]
        headers[name] = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings, db, embedded_worker=False)) as client:

        def request(who: str, method: str, url: str, body: Any = None) -> Any:
            answer = client.request(method, "/api/v1" + url, json=body, headers=headers[who])
            assert 200 <= answer.status_code < 300, answer.text
            return answer.json()

        yield request


def test_an_approved_release_request_deploys_with_its_commands_on_every_host(
    call, db, settings, git_host, targets, tmp_path
):
    repo = Repo(git_host, tmp_path, unique("rr"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    call("lead", "POST", "/projects", project_config(repo.name, repo.url, targets))
    made = call(
        "lead",
        "POST",
        "/project",
        {
            "project": repo.name,
            "env": "production",
            "version": "v1",
            "dependencies": ["bash"],
            "build": "echo built > built.txt",
            "test": "test -f built.txt && echo tested > tested.txt",
            "stop": 'echo "stopped in $(basename "$PWD")" > stop.marker',
            "start": "echo started > started.marker",
        },
    )
    assert made["status"] == "pending_approval"
    assert call("lead2", "POST", f"/tickets/{made['id']}/approve")["status"] == "approved"
    queued = call("dev", "POST", f"/tickets/{made['id']}/deploy")
    result = finish(db, settings, queued["deploy_id"])
    assert result["status"] == "success", result
    release = result["release"]
    for host in targets:
        assert read_live(host, repo.name, "index.html") == "v1\n"
        assert read_live(host, repo.name, "built.txt") == "built\n"
        assert read_live(host, repo.name, "tested.txt") == "tested\n"
        assert read_live(host, repo.name, "stop.marker") == f"stopped in {release}\n"
        assert read_live(host, repo.name, "started.marker") == "started\n"
    assert call("dev", "GET", f"/project/{made['id']}")["status"] == "succeeded"


def _released(call: Any, db: Any, settings: Any, body: dict[str, Any]) -> dict[str, Any]:
    made = call("lead", "POST", "/project", body)
    call("lead2", "POST", f"/tickets/{made['id']}/approve")
    return dict(
        finish(db, settings, call("dev", "POST", f"/tickets/{made['id']}/deploy")["deploy_id"])
    )


def test_a_failing_unit_test_of_a_request_switches_no_host(
    call, db, settings, git_host, targets, tmp_path
):
    repo = Repo(git_host, tmp_path, unique("rr"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    repo.commit({"index.html": "v2\n"}, tag="v2")
    call("lead", "POST", "/projects", project_config(repo.name, repo.url, targets))
    body = {"project": repo.name, "env": "production"}
    assert _released(call, db, settings, {**body, "version": "v1"})["status"] == "success"
    failed = _released(call, db, settings, {**body, "version": "v2", "test": "exit 3"})
    assert failed["status"] == "failed"
    assert "post_deploy" in str(failed["error"])
    for host in targets:  # still on v1, whole
        assert read_live(host, repo.name, "index.html") == "v1\n"
