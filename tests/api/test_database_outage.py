"""A database outage seen from outside: a real `ferryman serve` on a private PostgreSQL
(started by the test on its own port, so the shared one is never touched) that is stopped and
started again. While it is out, the API answers JSON 503 `database_unavailable`, a page a plain
503 page, the live console refuses with 1013 (try again later), `/readyz` says not ready and
`/healthz` stays 200; once it is back everything answers again, with no restart."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from ferryman.testing import postgres
from ferryman.testing.processes import FerrymanProcess, ferryman_exe
from tests.conftest import SERVICES

PG_PORT = 15432
PORT = 18124
# this xdist worker's own addresses: the fixed ports never meet another worker's
PG_HOST, HOST = SERVICES["outage_postgres"], SERVICES["outage_server"]
PASSWORD = "correct horse battery"


@pytest.fixture
def private_postgres() -> Iterator[postgres.PrivatePostgres]:
    reason = postgres.unavailable()
    if reason:
        if os.environ.get("FERRYMAN_REQUIRE_DATABASES"):
            pytest.fail(reason)
        pytest.skip(reason)
    with postgres.PrivatePostgres(host=PG_HOST) as pg:
        pg.start(PG_PORT)
        yield pg


def _stream_close_code(url: str, token: str) -> int | None:
    async def connect() -> int | None:
        ws_url = url.replace("http", "ws", 1) + "/api/v1/deploys/1/stream"
        auth = {"Authorization": f"Bearer {token}"}
        async with websockets.connect(ws_url, additional_headers=auth) as ws:
            try:
                await ws.recv()
            except websockets.ConnectionClosed as exc:
                return exc.rcvd.code if exc.rcvd else None
        return None

    return asyncio.run(asyncio.wait_for(connect(), 60))


def test_during_a_database_outage_the_api_answers_json_503_and_is_not_ready(
    private_postgres, tmp_path: Path
):
    home = tmp_path / "home"
    env = {
        **os.environ,
        "FERRYMAN_HOME": str(home),
        "FERRYMAN_DATABASE_URL": private_postgres.create_database("ferryman"),
    }
    env.pop("FERRYMAN_URL", None)
    env.pop("FERRYMAN_TOKEN", None)
    subprocess.run(
        [
            ferryman_exe(),
            "admin",
            "create-user",
            "alice",
            "--password",
            PASSWORD,
            "--superuser",
            "--create-home",  # a new home: the admin commands make none unless asked
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    server = FerrymanProcess.serve(PORT, env, tmp_path / "server.log", worker=False, host=HOST)
    server.start()
    api = httpx.Client(base_url=server.url, timeout=30)
    try:
        login = {"username": "alice", "password": PASSWORD}
        token = api.post("/api/v1/auth/login", json=login).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        assert api.get("/api/v1/projects", headers=auth).status_code == 200
        assert api.get("/readyz").status_code == 200

        private_postgres.stop()
        listed = api.get("/api/v1/projects", headers=auth)
        signed_in = api.post("/api/v1/auth/login", json=login)
        ready = api.get("/readyz")
        page = api.get("/", headers={"Cookie": "ferryman_session=a-session"})
        health = api.get("/healthz")
        stream_closed_with = _stream_close_code(server.url, token)

        private_postgres.start()
        listed_again = api.get("/api/v1/projects", headers=auth)
        ready_again = api.get("/readyz")
        log = server.output()
    finally:
        api.close()
        server.stop()

    for answer in (listed, signed_in, ready):
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"] == "application/json"
        assert answer.json()["error"]["code"] == "database_unavailable"
        assert answer.json()["error"]["message"]
        assert answer.headers["retry-after"]
    assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
    assert health.status_code == 200
    assert stream_closed_with == 1013
    assert listed_again.status_code == 200 and ready_again.status_code == 200
    assert ready_again.json()["status"] == "ready"
    assert "Traceback" not in log
