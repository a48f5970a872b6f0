"""Release tickets on a real fleet: create → approve (never one's own) → deploy → succeeded;
rejection, scheduling, preview, cancellation, pinned commits and rollback tickets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ferryman.app import create_app
from ferryman.services import queue, spaces, users
from ferryman.services.audit import SYSTEM
from tests.conftest import set_approval
from tests.helpers import Repo, finish, project_config, read_live, unique

pytestmark = pytest.mark.fleet
PASSWORD = "correct horse battery"


class Team:
    """One TestClient and a bearer header per user of the default space."""

    def __init__(self, client: TestClient, headers: dict[str, dict[str, str]]) -> None:
        self.client = client
        self.headers = headers

    def call(self, who: str, method: str, url: str, body: Any = None) -> Any:
        return self.client.request(method, "/api/v1" + url, json=body, headers=self.headers[who])

    def ok(self, who: str, method: str, url: str, body: Any = None) -> Any:
        response = self.call(who, method, url, body)
        assert 200 <= response.status_code < 300, response.text
        return response.json() if response.content else None


@pytest.fixture
def team(db, settings) -> Iterator[Team]:
    set_approval(db, "production", True)
    headers = {}
    for name, role in (("dev", "developer"), ("lead", "master"), ("lead2", "master")):
        actor = users.create_user(db, name, PASSWORD)
        spaces.set_member(db, SYSTEM, "default", name, role)
        token = users.create_token(db, actor, "test", ["read", "write"])["token"]
        headers[name] = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings, db, embedded_worker=False)) as client:
        yield Team(client, headers)


@pytest.fixture
def repo(git_host, tmp_path) -> Repo:
    repo = Repo(git_host, tmp_path, unique("tk"))
    repo.first = repo.commit(  # type: ignore[attr-defined]
        {"index.html": "v1\n", "app.txt": "one\n"}, message="first release", tag="v1"
    )
    return repo


def _project(team: Team, repo: Repo, targets, **env: Any) -> None:
    team.ok("lead", "POST", "/projects", project_config(repo.name, repo.url, targets, **env))


def _ticket(team: Team, repo: Repo, ref: str, who: str = "dev", **extra: Any) -> dict[str, Any]:
    body = {"project": repo.name, "env": "production", "ref": ref, "title": f"ship {ref}"}
    created = team.call(who, "POST", "/tickets", {**body, **extra})
    assert created.status_code == 201, created.text
    return dict(created.json())


def test_a_developer_ticket_approved_by_a_master_deploys_to_every_host(
    team, db, settings, repo, targets
):
    _project(team, repo, targets)
    ticket = _ticket(team, repo, "v1")
    assert ticket["status"] == "pending_approval"
    assert ticket["commit"] == repo.first

    early = team.call("dev", "POST", f"/tickets/{ticket['id']}/deploy")
    assert early.status_code == 409 and early.json()["error"]["code"] == "invalid_transition"
    assert team.call("dev", "POST", f"/tickets/{ticket['id']}/approve").status_code == 403

    approved = team.ok("lead", "POST", f"/tickets/{ticket['id']}/approve", {"comment": "go"})
    assert approved["status"] == "approved" and approved["reviewed_by"] == "lead"

    queued = team.ok("dev", "POST", f"/tickets/{ticket['id']}/deploy")
    assert queued["status"] == "queued"
    result = finish(db, settings, queued["deploy_id"])
    assert result["status"] == "success" and result["ticket_id"] == ticket["id"]
    assert team.ok("dev", "GET", f"/tickets/{ticket['id']}")["status"] == "succeeded"
    assert {read_live(h, repo.name, "index.html") for h in targets} == {"v1\n"}
    actions = [e["action"] for e in team.ok("lead", "GET", "/audit?space=default&limit=50")]
    for action in ("ticket.create", "ticket.approve", "ticket.deploy", "deploy.success"):
        assert action in actions


def test_nobody_approves_their_own_ticket_not_even_a_master(team, repo, targets):
    _project(team, repo, targets)
    ticket = _ticket(team, repo, "v1", who="lead")
    refused = team.call("lead", "POST", f"/tickets/{ticket['id']}/approve")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "own_ticket"
    assert team.ok("lead2", "POST", f"/tickets/{ticket['id']}/approve")["status"] == "approved"


def test_a_rejected_ticket_cannot_be_deployed_and_rejection_needs_a_reason(team, repo, targets):
    _project(team, repo, targets)
    ticket = _ticket(team, repo, "v1")
    no_reason = team.call("lead", "POST", f"/tickets/{ticket['id']}/reject", {"reason": " "})
    assert no_reason.status_code == 422
    rejected = team.ok("lead", "POST", f"/tickets/{ticket['id']}/reject", {"reason": "no tests"})
    assert rejected["status"] == "rejected" and rejected["review_comment"] == "no tests"
    refused = team.call("dev", "POST", f"/tickets/{ticket['id']}/deploy")
    assert refused.status_code == 409 and "rejected" in refused.json()["error"]["message"]
    assert team.ok("dev", "GET", "/deploys?space=default") == []


def test_production_refuses_a_direct_deploy_without_an_approved_ticket(team, repo, targets):
    _project(team, repo, targets)
    for who in ("dev", "lead"):
        r = team.call(
            who, "POST", f"/projects/{repo.name}/deploys", {"env": "production", "ref": "v1"}
        )
        assert r.status_code == 403 and r.json()["error"]["code"] == "approval_required"
    assert team.ok("dev", "GET", "/deploys?space=default") == []


def test_a_scheduled_ticket_refuses_to_start_before_its_time(team, repo, targets):
    _project(team, repo, targets)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    ticket = _ticket(team, repo, "v1", not_before=later)
    team.ok("lead", "POST", f"/tickets/{ticket['id']}/approve")
    early = team.call("dev", "POST", f"/tickets/{ticket['id']}/deploy")
    assert early.status_code == 409 and early.json()["error"]["code"] == "too_early"
    assert team.ok("dev", "GET", f"/tickets/{ticket['id']}")["status"] == "approved"


def test_the_preview_shows_hosts_commits_and_changed_files_since_what_runs_now(
    team, db, settings, repo, targets
):
    _project(team, repo, targets)
    first = _ticket(team, repo, "v1")
    preview = team.ok("lead", "GET", f"/tickets/{first['id']}/preview")
    assert [h["host"] for h in preview["hosts"]] == [t.address for t in targets]
    assert all(h["release"] is None for h in preview["hosts"])
    assert {f["path"] for f in preview["changes"][0]["files"]} == {"index.html", "app.txt"}

    team.ok("lead", "POST", f"/tickets/{first['id']}/approve")
    finish(db, settings, team.ok("dev", "POST", f"/tickets/{first['id']}/deploy")["deploy_id"])
    repo.commit({"app.txt": "two\n"}, message="bump app to two", tag="v2")
    second = _ticket(team, repo, "v2")
    preview = team.ok("lead", "GET", f"/tickets/{second['id']}/preview")
    assert all(h["commit"] == first["commit"] for h in preview["hosts"])
    [change] = preview["changes"]
    assert change["from"] == first["commit"]
    assert [c["message"] for c in change["commits"]] == ["bump app to two"]
    assert change["files"] == [{"status": "M", "path": "app.txt"}]


def test_an_approved_ticket_ships_the_reviewed_commit_even_if_the_branch_moves(
    team, db, settings, repo, targets
):
    _project(team, repo, targets)
    ticket = _ticket(team, repo, "master")
    repo.commit({"index.html": "unreviewed\n"}, message="sneaky")
    team.ok("lead", "POST", f"/tickets/{ticket['id']}/approve")
    result = finish(
        db, settings, team.ok("dev", "POST", f"/tickets/{ticket['id']}/deploy")["deploy_id"]
    )
    assert result["status"] == "success" and result["commit"] == ticket["commit"]
    assert {read_live(h, repo.name, "index.html") for h in targets} == {"v1\n"}


def test_cancelling_a_queued_ticket_drops_its_deploy_before_any_host_is_touched(
    team, db, settings, repo, targets
):
    _project(team, repo, targets)
    ticket = _ticket(team, repo, "v1")
    team.ok("lead", "POST", f"/tickets/{ticket['id']}/approve")
    queued = team.ok("dev", "POST", f"/tickets/{ticket['id']}/deploy")
    cancelled = team.ok("dev", "POST", f"/tickets/{ticket['id']}/cancel", {"reason": "oops"})
    assert cancelled["status"] == "cancelled"
    assert team.ok("dev", "GET", f"/deploys/{queued['deploy_id']}")["status"] == "cancelled"

    assert queue.claim_next(db, "w") is None
    assert all(not h.path(f"/srv/www/{repo.name}").exists() for h in targets)


def test_a_rollback_ticket_returns_every_host_to_the_release_before_the_ticket(
    team, db, settings, repo, targets
):
    _project(team, repo, targets)
    releases = []
    for ref in ("v1", "v2"):
        if ref == "v2":
            repo.commit({"index.html": "v2\n"}, tag="v2")
        ticket = _ticket(team, repo, ref)
        team.ok("lead", "POST", f"/tickets/{ticket['id']}/approve")
        done = finish(
            db, settings, team.ok("dev", "POST", f"/tickets/{ticket['id']}/deploy")["deploy_id"]
        )
        releases.append(done["release"])
    assert team.call("dev", "POST", f"/tickets/{ticket['id']}/rollback").status_code == 403
    back = team.call("lead", "POST", f"/tickets/{ticket['id']}/rollback")
    assert back.status_code == 201, back.text
    data = back.json()
    assert data["kind"] == "rollback" and data["rollback_of"] == ticket["id"]
    assert data["status"] == "queued" and data["target_release"] == releases[0]
    assert finish(db, settings, data["deploy_id"])["status"] == "success"
    assert {read_live(h, repo.name, "index.html") for h in targets} == {"v1\n"}
    assert team.ok("lead", "GET", f"/tickets/{data['id']}")["status"] == "succeeded"


def test_a_scheduled_ticket_can_be_queued_to_start_at_its_time(team, db, repo, targets):

    _project(team, repo, targets)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    ticket = _ticket(team, repo, "v1", not_before=later)
    team.ok("lead", "POST", f"/tickets/{ticket['id']}/approve")
    queued = team.ok("dev", "POST", f"/tickets/{ticket['id']}/deploy", {"schedule": True})
    assert queued["status"] == "queued"
    waiting = team.ok("dev", "GET", f"/deploys/{queued['deploy_id']}")
    assert waiting["status"] == "queued" and waiting["not_before"].startswith(later[:16])
    assert queue.claim_next(db, "w") is None  # not before its time


def test_a_failed_ticket_is_retried_under_the_same_ticket(team, db, settings, repo, targets):
    _project(team, repo, targets, tasks={"pre_release": "test -f /srv/go\n"})
    ticket = _ticket(team, repo, "v1")
    team.ok("lead", "POST", f"/tickets/{ticket['id']}/approve")
    first = team.ok("dev", "POST", f"/tickets/{ticket['id']}/deploy")["deploy_id"]
    assert finish(db, settings, first)["status"] == "failed"
    assert team.ok("dev", "GET", f"/tickets/{ticket['id']}")["status"] == "failed"
    for host in targets:
        host.path("/srv/go").write_text("")
    retried = team.call("dev", "POST", f"/deploys/{first}/retry")
    assert retried.status_code == 201, retried.text
    assert retried.json()["ticket_id"] == ticket["id"]
    assert finish(db, settings, retried.json()["id"])["status"] == "success"
    assert team.ok("dev", "GET", f"/tickets/{ticket['id']}")["status"] == "succeeded"
    assert {read_live(h, repo.name, "index.html") for h in targets} == {"v1\n"}
