"""/healthz, /readyz and /metrics on a real database: readiness says which check failed,
/metrics answers only with its token, both probes are in OpenAPI."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from ferryman.app import create_app
from ferryman.bootstrap import attach_key
from ferryman.config.settings import Settings, load_settings
from ferryman.db.session import Database
from ferryman.secretbox import SecretBox, new_key

TOKEN = "s3cret-metrics-token-for-tests"


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[Settings, Database]]:
    settings = load_settings(
        {"FERRYMAN_HOME": str(tmp_path / "home"), "FERRYMAN_METRICS_TOKEN": TOKEN}
    )
    db = Database(settings.database_url)
    db.upgrade()
    attach_key(db, SecretBox(new_key()))
    yield settings, db
    db.dispose()


def test_readyz_is_ready_with_every_check_named_and_both_probes_are_in_openapi(home):
    settings, db = home
    with TestClient(create_app(settings, db, embedded_worker=False)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200
        body = ready.json()
        assert body["status"] == "ready"
        assert {k: v for k, v in body["checks"].items() if k != "workers"} == {
            "database": "ok",
            "migrations": "ok",
            "secret_key": "ok",
        }
        assert body["checks"]["workers"].startswith("none alive")  # told, never unready
        assert client.get("/healthz").json()["status"] == "ok"
        paths = client.get("/openapi.json").json()["paths"]
        assert "/healthz" in paths and "/readyz" in paths
        assert "503" in paths["/readyz"]["get"]["responses"]


def test_readyz_waits_for_the_embedded_workers_heartbeat(home):
    settings, db = home
    with TestClient(create_app(settings, db, embedded_worker=True)) as client:
        deadline = time.monotonic() + 10
        while (ready := client.get("/readyz")).status_code != 200:
            assert time.monotonic() < deadline, ready.json()
            assert "heartbeat" in ready.json()["checks"]["worker"]
            time.sleep(0.05)
        assert ready.json()["checks"]["worker"] == "ok"
        assert ready.json()["checks"]["workers"] == "1 alive"


def test_readyz_is_not_ready_while_a_migration_is_pending(home):
    settings, db = home
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0013'"))
    with TestClient(create_app(settings, db, embedded_worker=False)) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["status"] == "not_ready"
    assert "run `ferryman migrate`" in ready.json()["checks"]["migrations"]
    assert "0013" in ready.json()["checks"]["migrations"]


def test_readyz_is_not_ready_with_another_secret_key(home):
    settings, db = home
    db.box = SecretBox(new_key())  # not the key the database's canary was sealed with
    with TestClient(create_app(settings, db, embedded_worker=False)) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "does not match" in ready.json()["checks"]["secret_key"]


def test_metrics_answer_only_with_the_token_and_are_off_without_one(home):
    settings, db = home
    with TestClient(create_app(settings, db, embedded_worker=False)) as client:
        assert client.get("/metrics").status_code == 401
        wrong = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"})
        assert wrong.status_code == 401
        basic = client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"})
        assert basic.status_code == 401
        page = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/plain")
        assert 'ferryman_build_info{version="' in page.text
        assert "ferryman_workers 0.0" in page.text
        assert "/metrics" not in client.get("/openapi.json").json()["paths"]
    off = dataclasses.replace(settings, metrics_token="")
    with TestClient(create_app(off, db, embedded_worker=False)) as client:
        closed = client.get("/metrics", headers={"Authorization": "Bearer "})
        assert closed.status_code == 404
        assert "FERRYMAN_METRICS_TOKEN" in closed.json()["error"]["message"]


def test_a_short_metrics_token_is_refused_at_start():
    from ferryman.errors import ConfigError

    with pytest.raises(ConfigError, match="FERRYMAN_METRICS_TOKEN: must be at least 16"):
        load_settings({"FERRYMAN_HOME": "/x", "FERRYMAN_METRICS_TOKEN": "short"})


def _metric(page: str, name: str) -> float:
    for line in page.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics:\n{page}")


def test_metrics_count_queued_deploys_take_overs_and_polls(home):
    from datetime import timedelta

    from ferryman.config.project import parse_project
    from ferryman.db.models import utcnow
    from ferryman.services import deploys, projects, workers
    from tests.conftest import set_approval
    from tests.helpers import ADMIN, project_config

    settings, db = home
    set_approval(db, "production", False)
    set_approval(db, "staging", False)
    # hosts on this suite's loopback range: never contacted, nothing is deployed here
    config = project_config("shop", "ssh://git@127.0.120.50/shop.git", [])
    config["environments"]["production"]["hosts"] = ["127.0.120.9"]
    config["environments"]["staging"] = {**config["environments"]["production"]}
    config["environments"]["staging"]["hosts"] = ["127.0.120.8"]
    projects.apply_project(db, ADMIN, parse_project(config))
    queued = deploys.request_deploy(db, ADMIN, "shop", "production", "v1")
    later = utcnow() + timedelta(hours=1)
    deploys.request_deploy(db, ADMIN, "shop", "staging", "v1", not_before=later)
    workers.record_take_over(db, queued.id, "worker-b")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app(settings, db, embedded_worker=False)) as client:
        polled = client.get("/api/v1/agent/web1", headers={"Authorization": "Bearer nope"})
        assert polled.status_code in (401, 403, 404)
        page = client.get("/metrics", headers=auth).text
    active = 'ferryman_deploys_active{env="production",project="shop",status="queued"}'
    assert _metric(page, active) == 1
    assert _metric(page, 'ferryman_queue_depth{queue="default"}') == 1  # the later one waits
    assert _metric(page, 'ferryman_queue_oldest_age_seconds{queue="default"}') >= 0
    assert _metric(page, "ferryman_lease_takeovers_total") == 1
    assert _metric(page, f'ferryman_agent_polls_total{{code="{polled.status_code}"}}') == 1
    assert _metric(page, "ferryman_deploys_running") == 0


def test_worker_heartbeats_say_who_is_alive_and_a_long_silent_worker_is_swept(home):
    import json

    from sqlalchemy import select

    from ferryman.db.models import KeyValue
    from ferryman.services import workers

    _settings, db = home
    workers.beat(db, "host-a:1:aaaaaa", concurrency=4, running=1, queues=[])
    workers.beat(db, "host-b:2:bbbbbb", concurrency=2, running=0, queues=["eu"])
    assert [w["name"] for w in workers.alive(db)] == ["host-a:1:aaaaaa", "host-b:2:bbbbbb"]
    with db.transaction() as s:  # host-b went silent two days ago
        for row in s.scalars(select(KeyValue).where(KeyValue.key.startswith(workers.PREFIX))):
            data = json.loads(row.value)
            if data["name"].startswith("host-b"):
                data["seen"] = "2000-01-01T00:00:00+00:00"
                row.value = json.dumps(data)
    assert [w["name"] for w in workers.alive(db)] == ["host-a:1:aaaaaa"]
    workers.beat(db, "host-a:1:aaaaaa", concurrency=4, running=0, queues=[])  # sweeps host-b
    with db.read() as s:
        names = [
            json.loads(v)["name"]
            for v in s.scalars(select(KeyValue.value).where(KeyValue.key.startswith("worker:")))
        ]
    assert names == ["host-a:1:aaaaaa"]
    workers.forget(db, "host-a:1:aaaaaa")  # a clean stop
    assert workers.alive(db) == []


def test_stage_histograms_count_each_finished_deploy_once_across_scrapes(home):
    from sqlalchemy import update

    from ferryman.config.project import parse_project
    from ferryman.db.models import Deploy, utcnow
    from ferryman.services import deploys, projects
    from tests.conftest import set_approval
    from tests.helpers import ADMIN, project_config

    settings, db = home
    set_approval(db, "production", False)
    config = project_config("shop", "ssh://git@127.0.120.50/shop.git", [])
    config["environments"]["production"]["hosts"] = ["127.0.120.9"]
    projects.apply_project(db, ADMIN, parse_project(config))

    def finished_deploy(seconds: float) -> None:
        made = deploys.request_deploy(db, ADMIN, "shop", "production", "v1")
        stages = [{"name": "transfer", "status": "success", "duration": seconds}]
        with db.transaction() as s:  # as a worker's run records it
            s.execute(
                update(Deploy)
                .where(Deploy.id == made.id)
                .values(status="success", finished_at=utcnow(), stages=stages)
            )

    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app(settings, db, embedded_worker=False)) as client:
        finished_deploy(0.7)
        for _ in range(3):
            page = client.get("/metrics", headers=auth).text
        assert _metric(page, 'ferryman_stage_duration_seconds_count{stage="transfer"}') == 1
        finished_deploy(45)
        page = client.get("/metrics", headers=auth).text
        assert _metric(page, 'ferryman_stage_duration_seconds_count{stage="transfer"}') == 2
        assert _metric(page, 'ferryman_stage_duration_seconds_sum{stage="transfer"}') == 45.7
        assert (
            _metric(page, 'ferryman_stage_duration_seconds_bucket{le="1.0",stage="transfer"}') == 1
        )
        assert (
            _metric(page, 'ferryman_stage_duration_seconds_bucket{le="60.0",stage="transfer"}') == 2
        )
        assert (
            _metric(
                page,
                'ferryman_deploys_total{env="production",kind="deploy",project="shop",status="success"}',
            )
            == 2
        )


def test_ssh_connection_failures_are_counted_by_reason_apart_from_failed_commands(
    home, fleet, targets, tmp_path
):
    """Real failed connections (a refused port, an unknown host key, a key the host does
    not accept), recorded by a run as it records them, counted apart from a command whose
    output happens to say "cannot connect"."""
    import asyncio
    import subprocess

    from ferryman.config.project import parse_project
    from ferryman.errors import RemoteError
    from ferryman.pipeline.recorder import Recorder
    from ferryman.remote.executor import Executor, Target
    from ferryman.services import deploys, projects
    from ferryman.services.deploy_records import DatabaseWriter
    from tests.conftest import set_approval
    from tests.helpers import ADMIN, project_config

    settings, db = home
    set_approval(db, "production", False)
    host = targets[0]
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    (tmp_path / "empty_known_hosts").write_text("")

    async def failure(key: Path, known_hosts: Path, port: int) -> str:
        executor = Executor(client_key=key, known_hosts=known_hosts, connect_timeout=10)
        target = Target(key=f"{host.address}:{port}", address=host.address, port=port, user="root")
        with pytest.raises(RemoteError) as caught:
            await executor.connect(target)
        return str(caught.value)

    refused = asyncio.run(failure(fleet.client_key, fleet.known_hosts, 1))
    unknown = asyncio.run(failure(fleet.client_key, tmp_path / "empty_known_hosts", 22))
    refused_key = asyncio.run(failure(stranger, fleet.known_hosts, 22))
    a_command = RemoteError(
        "command failed", host="10.0.0.9:22", stage="post_deploy", exit_status=1,
        stderr_tail="mysql: cannot connect: Connection refused",
    )  # fmt: skip

    config = project_config("shop", "ssh://git@127.0.120.50/shop.git", [])
    config["environments"]["production"]["hosts"] = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    projects.apply_project(db, ADMIN, parse_project(config))
    made = deploys.request_deploy(db, ADMIN, "shop", "production", "v1")

    async def record() -> None:
        recorder = Recorder(DatabaseWriter(db), made.id)
        for key, error in (
            ("10.0.0.1:22", refused),
            ("10.0.0.2:22", unknown),
            ("10.0.0.3:22", refused_key),
            ("10.0.0.9:22", str(a_command)),
        ):
            recorder.host(key, status="failed", error=error)
        await recorder.flush()

    asyncio.run(record())
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app(settings, db, embedded_worker=False)) as client:
        page = client.get("/metrics", headers=auth).text
    name = 'ferryman_ssh_connection_failures_total{env="production",project="shop",reason="%s"}'
    assert _metric(page, name % "unreachable") == 1, refused
    assert _metric(page, name % "host_key") == 1, unknown
    assert _metric(page, name % "auth") == 1, refused_key
    assert (
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in page.splitlines()
            if line.startswith("ferryman_ssh_connection_failures_total{")
        )
        == 3
    )  # the command that failed is not a connection failure
