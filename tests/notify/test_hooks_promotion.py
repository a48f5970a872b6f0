"""A git push that triggers environments where one requires the commit to pass another first
(``requires_passed``): the push makes the tickets it may and skips the gated one, instead of
failing the whole delivery (which the provider could not resend: it would be a replay)."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import uuid
from pathlib import Path

from fastapi.testclient import TestClient

from ferryman.app import create_app
from ferryman.config.project import parse_project
from ferryman.services import hooks, projects
from ferryman.services.audit import SYSTEM
from tests.api.world import SPACE, build_world

SAMPLES = Path(__file__).parent / "samples"
SECRET = "hook-secret-0123456789"


def test_a_push_makes_the_test_ticket_and_skips_production_until_the_commit_passed(
    tmp_path: Path,
):
    world = build_world(tmp_path)
    repo = world.repo_url.removeprefix("file://")
    subprocess.run(["git", "-C", repo, "branch", "develop"], check=True, capture_output=True)
    config = world.config("gated")
    config["environments"] = {k: dict(v) for k, v in config["environments"].items()}
    config["environments"]["staging"]["triggers"] = {"branches": ["develop"]}
    config["environments"]["production"]["triggers"] = {"branches": ["develop"]}
    config["environments"]["production"]["requires_passed"] = "staging"
    projects.apply_project(world.db, SYSTEM, parse_project(config))
    hooks.set_secret(world.db, SYSTEM, f"{SPACE}:gated", SECRET)

    data = json.loads((SAMPLES / "github_push.json").read_text())
    data["ref"] = "refs/heads/develop"
    body = json.dumps(data).encode()
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "X-Hub-Signature-256": f"sha256={digest}",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
    }
    client = TestClient(create_app(world.settings, world.db, embedded_worker=False))
    answer = client.post(f"/api/v1/hooks/github/{SPACE}:gated", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert [t["env"] for t in answer.json()["tickets"]] == ["staging"]
