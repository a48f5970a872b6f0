"""The live console on a real fleet: a viewer that connects, leaves and comes back mid-deploy
gets every line exactly once, and the deploy never notices."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from ferryman.app import create_app
from ferryman.services import deploy_views, deploys, users
from tests.helpers import ADMIN, Repo, apply, finish, project_config, unique

pytestmark = pytest.mark.fleet


def test_a_viewer_that_reconnects_mid_deploy_gets_the_whole_log_once(
    db, settings, git_host, targets, tmp_path
):
    repo = Repo(git_host, tmp_path, unique("live"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    build = 'for i in $(seq 1 40); do echo "build line $i"; echo "warn $i" >&2; sleep 0.02; done\n'
    apply(db, project_config(repo.name, repo.url, targets, tasks={"post_deploy": build}))
    users.create_user(db, "viewer", "correct horse battery", superuser=True)
    token = users.login(db, "viewer", "correct horse battery")
    queued = deploys.request_deploy(db, ADMIN, repo.name, "production", "v1")
    runner = threading.Thread(target=finish, args=(db, settings, queued.id))
    seen: list[dict] = []
    headers = {"Authorization": f"Bearer {token}"}
    url = f"/api/v1/deploys/{queued.id}/stream"
    with TestClient(create_app(settings, db, embedded_worker=False)) as client:
        runner.start()
        with client.websocket_connect(url, headers=headers) as ws:  # first viewer, then gone
            while sum(1 for m in seen if "build line" in m.get("text", "")) < 10:
                message = ws.receive_json()
                if message["type"] == "line":
                    seen.append(message)
        with client.websocket_connect(url, headers=headers) as other:  # a second viewer
            assert other.receive_json()["type"] in ("line", "deploy")
        cursor = seen[-1]["id"]
        with client.websocket_connect(f"{url}?after={cursor}", headers=headers) as ws:
            while True:
                message = ws.receive_json()
                if message["type"] == "line":
                    seen.append(message)
                elif message["type"] == "end":
                    assert message["status"] == "success"
                    break
        runner.join(60)
        page = client.get(f"/api/v1/deploys/{queued.id}/log?limit=5000", headers=headers).json()
    stored = [line["id"] for line in page["lines"]]
    assert [m["id"] for m in seen] == stored  # no gap, no duplicate, in order
    assert deploy_views.get(db, queued.id)["status"] == "success"
    streams = {m["stream"] for m in seen if m["stage"] == "post_deploy"}
    assert {"stdout", "stderr"} <= streams
