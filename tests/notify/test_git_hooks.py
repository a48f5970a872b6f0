"""Git webhooks in: recorded real-shaped payloads of GitLab, Gitea and GitHub, with right and
wrong signatures and replays; a tag push makes a production ticket (waiting for approval); a
push to a triggering branch of an ``auto_deploy`` environment deploys to the fleet."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ferryman.app import create_app
from ferryman.config.project import parse_project
from ferryman.db.models import Ticket
from ferryman.services import hooks, projects
from ferryman.services.audit import SYSTEM
from tests.api.world import SPACE, World, build_world

SAMPLES = Path(__file__).parent / "samples"
SECRET = "hook-secret-0123456789"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    w = build_world(tmp_path_factory.mktemp("hooks"))
    repo = w.repo_url.removeprefix("file://")
    subprocess.run(["git", "-C", repo, "branch", "develop"], check=True, capture_output=True)
    config = w.config("hooked")
    config["environments"] = {k: dict(v) for k, v in config["environments"].items()}
    config["environments"]["production"]["triggers"] = {"tags": True}
    config["environments"]["staging"]["triggers"] = {"branches": ["develop"]}
    config["environments"]["staging"]["auto_deploy"] = True
    projects.apply_project(w.db, SYSTEM, parse_project(config))
    hooks.set_secret(w.db, SYSTEM, f"{SPACE}:hooked", SECRET)
    return w


def _tickets(world: World) -> int:
    with world.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(Ticket)) or 0)


def _signed(provider: str, body: bytes, secret: str = SECRET) -> dict[str, str]:
    delivery = str(uuid.uuid4())
    if provider == "gitlab":
        event = "Tag Push Hook"
        return {"X-Gitlab-Token": secret, "X-Gitlab-Event": event, "X-Gitlab-Event-UUID": delivery}
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if provider == "gitea":
        return {"X-Gitea-Signature": digest, "X-Gitea-Event": "push", "X-Gitea-Delivery": delivery}
    return {
        "X-Hub-Signature-256": f"sha256={digest}",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
    }


@pytest.mark.parametrize(
    ("provider", "sample"),
    [
        ("gitlab", "gitlab_tag_push.json"),
        ("gitea", "gitea_push.json"),
        ("github", "github_push.json"),
    ],
)
def test_a_wrong_signature_or_a_replay_is_refused_and_makes_nothing(world, provider, sample):
    client = TestClient(create_app(world.settings, world.db, embedded_worker=False))
    body = (SAMPLES / sample).read_bytes()
    url = f"/api/v1/hooks/{provider}/{SPACE}:hooked"
    before = _tickets(world)
    wrong = client.post(url, content=body, headers=_signed(provider, body, "not-the-secret"))
    assert wrong.status_code == 401
    assert client.post(url, content=body, headers={}).status_code == 401
    assert _tickets(world) == before
    tampered = client.post(url, content=body + b" ", headers=_signed(provider, body))
    if provider == "gitlab":  # a token, not a signature: the altered body is this push
        assert tampered.status_code == 200, tampered.text
        assert len(tampered.json()["tickets"]) == 1
        headers = _signed(provider, body)  # ... so the same push again is a replay
        replay = client.post(url, content=body, headers=headers)
        assert replay.status_code == 401 and "already received" in replay.text
        assert _tickets(world) == before + 1
        return
    assert tampered.status_code == 401, tampered.text
    headers = _signed(provider, body)
    first = client.post(url, content=body, headers=headers)
    assert first.status_code == 200, first.text
    made = first.json()["tickets"]
    assert len(made) == 1
    replay = client.post(url, content=body, headers=headers)
    assert replay.status_code == 401 and "already received" in replay.json()["error"]["message"]
    assert _tickets(world) == before + 1


def test_a_tag_push_makes_a_production_ticket_waiting_for_approval(world):
    client = TestClient(create_app(world.settings, world.db, embedded_worker=False))
    # another push of the tag than the sample's (the same push again would be a replay)
    data = json.loads((SAMPLES / "gitlab_tag_push.json").read_text())
    body = json.dumps({**data, "user_username": "another-pusher", "before": "1" * 40}).encode()
    answer = client.post(
        f"/api/v1/hooks/gitlab/{SPACE}:hooked", content=body, headers=_signed("gitlab", body)
    ).json()
    ticket = answer["tickets"][0]
    assert ticket["env"] == "production" and ticket["ref"] == "v1"
    assert ticket["status"] == "pending_approval" and ticket["created_by"] == "gitlab-webhook"
    assert "82b3d5ae" in ticket["description"]


def test_a_branch_nobody_triggers_on_makes_nothing(world):
    client = TestClient(create_app(world.settings, world.db, embedded_worker=False))
    data = json.loads((SAMPLES / "github_push.json").read_text())
    data["ref"] = "refs/heads/feature-x"
    body = json.dumps(data).encode()
    answer = client.post(
        f"/api/v1/hooks/github/{SPACE}:hooked", content=body, headers=_signed("github", body)
    )
    assert answer.status_code == 200 and answer.json()["tickets"] == []


@pytest.mark.fleet
def test_a_push_to_an_auto_deploy_branch_deploys_to_the_fleet(
    db, settings, git_host, targets, tmp_path
):
    import asyncio

    from ferryman.services import deploy_views
    from tests.helpers import Repo, apply, finish, project_config, read_live, unique

    repo = Repo(git_host, tmp_path, unique("hooked"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    repo.commit({"index.html": "develop\n"}, branch="develop")
    config = project_config(repo.name, repo.url, targets[:2])
    env = config["environments"].pop("production")
    config["environments"]["staging"] = {
        **env,
        "triggers": {"branches": ["develop"]},
        "auto_deploy": True,
    }
    apply(db, config)
    hooks.set_secret(db, SYSTEM, repo.name, SECRET)
    data = json.loads((SAMPLES / "github_push.json").read_text())
    body = json.dumps(data).encode()
    headers = {k.lower(): v for k, v in _signed("github", body).items()}
    found = hooks.target(db, "github", repo.name, headers)
    answer = asyncio.run(hooks.receive(db, settings, found, headers, body))
    ticket = answer["tickets"][0]
    assert ticket["env"] == "staging" and ticket["status"] == "queued"
    done = finish(db, settings, ticket["deploy_id"])
    assert done["status"] == "success", done["error"]
    assert {read_live(h, repo.name, "index.html") for h in targets[:2]} == {"develop\n"}
    assert deploy_views.get(db, ticket["deploy_id"])["ticket_id"] == ticket["id"]
