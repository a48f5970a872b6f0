"""Promotion on the real fleet (QA → approval → production): an environment with
``requires_passed: test`` takes a commit only after a deploy of it succeeded in test, and a
successful test deploy becomes the production ticket. A developer trying to go around it —
a direct deploy, a ticket for another ref, a branch moved under a request, a retry — is
refused and no production host changes; a rollback never is."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ferryman.app import create_app
from ferryman.services import deploys, spaces, users
from ferryman.services.audit import SYSTEM
from tests.conftest import set_approval
from tests.helpers import ADMIN, Repo, apply, finish, live, read_live, release_dirs, unique

PASSWORD = "correct horse battery"


class Team:
    def __init__(self, client: TestClient, headers: dict[str, dict[str, str]]) -> None:
        self.client, self.headers = client, headers

    def call(self, who: str, method: str, url: str, body: Any = None) -> Any:
        return self.client.request(method, "/api/v1" + url, json=body, headers=self.headers[who])

    def ok(self, who: str, method: str, url: str, body: Any = None) -> Any:
        response = self.call(who, method, url, body)
        assert 200 <= response.status_code < 300, response.text
        return response.json()


@pytest.fixture
def team(db, settings) -> Iterator[Team]:
    headers = {}
    for name, role in (("dev", "developer"), ("lead", "master"), ("viewer", "reporter")):
        actor = users.create_user(db, name, PASSWORD)
        spaces.set_member(db, SYSTEM, "default", name, role)
        token = users.create_token(db, actor, "test", ["read", "write"])["token"]
        headers[name] = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings, db, embedded_worker=False)) as client:
        yield Team(client, headers)


@pytest.fixture
def repo(git_host, tmp_path) -> Repo:
    repo = Repo(git_host, tmp_path, unique("promo"))
    repo.v1 = repo.commit({"index.html": "v1\n"}, message="one", tag="v1")  # type: ignore[attr-defined]
    return repo


def _config(repo: Repo, targets, gate: bool = True, **production: Any) -> dict[str, Any]:
    def env(hosts) -> dict[str, Any]:
        return {
            "hosts": [h.address for h in hosts],
            "user": "root",
            "webroot": f"/srv/www/{repo.name}",
            "releases": f"/srv/releases/{repo.name}",
            "task_timeout": 60,
        }

    prod = {**env(targets[1:]), **production}
    if gate:
        prod["requires_passed"] = "test"
    return {
        "project": repo.name,
        "repo": repo.url,
        "environments": {"test": env(targets[:1]), "production": prod},
    }


def _deploy(team: Team, who: str, repo: Repo, env: str, ref: str) -> Any:
    return team.call(who, "POST", f"/projects/{repo.name}/deploys", {"env": env, "ref": ref})


def test_production_refuses_a_commit_that_never_passed_test_until_test_deploys_it(
    team, db, settings, repo, targets
):
    apply(db, _config(repo, targets))
    production = targets[1:]
    refused = _deploy(team, "dev", repo, "production", "v1")
    assert refused.status_code == 409, refused.text
    message = refused.json()["error"]["message"]
    assert "production" in message and repo.v1[:12] in message and "test" in message
    assert all(release_dirs(h, repo.name) == [] for h in production)

    tested = _deploy(team, "dev", repo, "test", "v1")
    assert tested.status_code == 201, tested.text
    assert finish(db, settings, tested.json()["id"])["status"] == "success"

    allowed = _deploy(team, "dev", repo, "production", "v1")
    assert allowed.status_code == 201, allowed.text
    assert finish(db, settings, allowed.json()["id"])["status"] == "success"
    assert {read_live(h, repo.name, "index.html") for h in production} == {"v1\n"}


def test_a_branch_moved_after_test_cannot_carry_an_untested_commit_to_production(
    team, db, settings, repo, targets
):
    apply(db, _config(repo, targets))
    tested = _deploy(team, "dev", repo, "test", "master")
    assert finish(db, settings, tested.json()["id"])["commit"] == repo.v1
    untested = repo.commit({"index.html": "sneaky\n"}, message="not tested")

    refused = _deploy(team, "dev", repo, "production", "master")
    assert refused.status_code == 409, refused.text
    assert untested[:12] in refused.json()["error"]["message"]
    ticket = team.call(
        "dev",
        "POST",
        "/tickets",
        {"project": repo.name, "env": "production", "ref": "master", "title": "other ref"},
    )
    assert ticket.status_code == 409 and untested[:12] in ticket.json()["error"]["message"]
    assert team.ok("dev", "GET", f"/tickets?project={repo.name}") == []
    assert all(release_dirs(h, repo.name) == [] for h in targets[1:])


def test_a_successful_test_deploy_is_promoted_to_a_production_ticket_with_its_commit(
    team, db, settings, repo, targets
):
    set_approval(db, "production", True)
    apply(db, _config(repo, targets))
    tested = _deploy(team, "dev", repo, "test", "v1").json()
    assert finish(db, settings, tested["id"])["status"] == "success"
    repo.commit({"index.html": "v2\n"}, message="two", tag="v2")  # the branch moves on

    denied = team.call("viewer", "POST", f"/deploys/{tested['id']}/promote", {"env": "production"})
    assert denied.status_code == 403
    ticket = team.call("dev", "POST", f"/deploys/{tested['id']}/promote", {"env": "production"})
    assert ticket.status_code == 201, ticket.text
    ticket = ticket.json()
    assert ticket["env"] == "production" and ticket["status"] == "pending_approval"
    assert ticket["commit"] == repo.v1 and ticket["kind"] == "deploy"
    preview = team.ok("lead", "GET", f"/tickets/{ticket['id']}/preview")
    assert [h["host"] for h in preview["hosts"]] == [h.address for h in targets[1:]]
    assert [f["path"] for f in preview["changes"][0]["files"]] == ["index.html"]

    team.ok("lead", "POST", f"/tickets/{ticket['id']}/approve", {"comment": "QA passed"})
    queued = team.ok("dev", "POST", f"/tickets/{ticket['id']}/deploy")
    done = finish(db, settings, queued["deploy_id"])
    assert done["status"] == "success" and done["commit"] == repo.v1
    assert {read_live(h, repo.name, "index.html") for h in targets[1:]} == {"v1\n"}
    audit = team.ok("lead", "GET", "/audit?space=default&limit=100")
    made = [e for e in audit if e["action"] == "ticket.create"]
    assert made and made[0]["detail"]["promoted_from"] == tested["id"]


def test_only_a_successful_deploy_is_promoted_and_never_to_its_own_environment(
    team, db, settings, repo, targets
):
    apply(db, _config(repo, targets, gate=False, tasks={"pre_release": "exit 3"}))
    broken = _deploy(team, "dev", repo, "production", "v1").json()
    assert finish(db, settings, broken["id"])["status"] == "failed"
    refused = team.call("dev", "POST", f"/deploys/{broken['id']}/promote", {"env": "test"})
    assert refused.status_code == 409 and "failed" in refused.json()["error"]["message"]

    tested = _deploy(team, "dev", repo, "test", "v1").json()
    assert finish(db, settings, tested["id"])["status"] == "success"
    same = team.call("dev", "POST", f"/deploys/{tested['id']}/promote", {"env": "test"})
    assert same.status_code == 422
    nowhere = team.call("dev", "POST", f"/deploys/{tested['id']}/promote", {"env": "moon"})
    assert nowhere.status_code == 404
    assert team.ok("dev", "GET", f"/tickets?project={repo.name}") == []


def test_a_retry_is_gated_but_a_rollback_to_an_untested_release_is_not(
    team, db, settings, repo, targets
):
    production = targets[1:]
    apply(db, _config(repo, targets, gate=False))  # before the team adopted the gate
    first = _deploy(team, "dev", repo, "production", "v1").json()
    assert finish(db, settings, first["id"])["status"] == "success"
    old = live(production[0], repo.name)
    repo.commit({"index.html": "v2\n"}, message="two", tag="v2")
    apply(db, _config(repo, targets, gate=False, tasks={"pre_release": "exit 3"}))
    failed = _deploy(team, "dev", repo, "production", "v2").json()
    assert finish(db, settings, failed["id"])["status"] == "failed"

    apply(db, _config(repo, targets))  # the gate now, and the hook fixed
    retry = team.call("dev", "POST", f"/deploys/{failed['id']}/retry")
    assert retry.status_code == 409 and "test" in retry.json()["error"]["message"]
    assert {live(h, repo.name) for h in production} == {old}

    tested = _deploy(team, "dev", repo, "test", "v2").json()
    assert finish(db, settings, tested["id"])["status"] == "success"
    retried = team.call("dev", "POST", f"/deploys/{failed['id']}/retry")
    assert retried.status_code == 201, retried.text
    assert finish(db, settings, retried.json()["id"])["status"] == "success"
    assert {read_live(h, repo.name, "index.html") for h in production} == {"v2\n"}

    # v1 never passed test, yet putting production back on it is never blocked
    back = deploys.request_rollback(db, ADMIN, repo.name, "production", old)
    assert finish(db, settings, back.id)["status"] == "success"
    assert {live(h, repo.name) for h in production} == {old}
