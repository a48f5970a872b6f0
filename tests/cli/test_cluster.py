"""Several processes on one PostgreSQL database: two `ferryman serve --no-worker` and one
`ferryman worker`. A deploy asked of server A, run by the worker, streams live through B."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from ferryman.testing import databases
from tests.helpers import Repo, project_config, unique

pytestmark = pytest.mark.fleet
PASSWORD = "correct horse battery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[str]:
    reason = databases.unavailable("postgresql")
    if reason:
        if os.environ.get("FERRYMAN_REQUIRE_DATABASES"):
            pytest.fail(reason)
        pytest.skip(reason)
    url = databases.create("postgresql", tmp_path)
    yield url
    databases.drop(url)


def _wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90  # a loaded 2-core machine: seconds to start
    while True:
        try:
            httpx.get(url + "/healthz", timeout=1)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{url} did not start") from None
            time.sleep(0.1)


def test_a_deploy_asked_of_one_server_streams_live_through_another(
    postgres, settings, git_host, targets, tmp_path
):
    exe = shutil.which("ferryman", path=os.path.dirname(sys.executable)) or "ferryman"
    env = {
        **os.environ,
        "FERRYMAN_HOME": str(settings.home),
        "FERRYMAN_DATABASE_URL": postgres,
        "FERRYMAN_WORKER_POLL": "0.2",
    }
    subprocess.run(
        [exe, "admin", "create-user", "alice", "--password", PASSWORD, "--superuser"],
        env=env,
        check=True,
        capture_output=True,
    )
    ports = [_free_port(), _free_port()]
    procs = [
        subprocess.Popen(
            [exe, "serve", "--no-worker", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    procs.append(subprocess.Popen([exe, "worker"], env=env, stderr=subprocess.DEVNULL))
    a, b = (f"http://127.0.0.1:{port}" for port in ports)
    try:
        for url, proc in zip((a, b), procs, strict=False):
            _wait_up(url, proc)
        token = httpx.post(
            a + "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}
        ).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        repo = Repo(git_host, tmp_path, unique("cluster"))
        repo.commit({"index.html": "v1\n"}, tag="v1")
        build = 'for i in 1 2 3 4 5; do echo "building $i"; sleep 0.2; done\n'
        config = project_config(repo.name, repo.url, targets, tasks={"post_deploy": build})
        config["environments"]["staging"] = config["environments"].pop("production")
        assert httpx.post(a + "/api/v1/projects", json=config, headers=auth).status_code == 200
        asked = httpx.post(
            a + f"/api/v1/projects/{repo.name}/deploys",
            json={"env": "staging", "ref": "v1"},
            headers=auth,
        )
        assert asked.status_code == 201, asked.text
        deploy_id = asked.json()["id"]

        async def watch() -> tuple[list[dict], str]:
            lines, status = [], ""
            url = b.replace("http", "ws") + f"/api/v1/deploys/{deploy_id}/stream"
            async with websockets.connect(url, additional_headers=auth) as ws:
                async for raw in ws:
                    message = json.loads(raw)
                    if message["type"] == "line":
                        lines.append(message)
                    elif message["type"] == "end":
                        status = message["status"]
                        break
            return lines, status

        lines, status = asyncio.run(asyncio.wait_for(watch(), 120))
        assert status == "success"
        assert [m["text"] for m in lines if m["text"].startswith("building")] == [
            f"building {i}" for i in range(1, 6)
        ]
        served = httpx.get(a + f"/api/v1/deploys/{deploy_id}", headers=auth).json()
        assert served["status"] == "success"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
