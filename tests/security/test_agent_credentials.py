"""A pull-mode host's credentials as a cron line has them: ``curl -I`` (HEAD) answers the poll
like GET without a body, HTTP basic auth carries the host's token as well as a bearer header,
and ``/api/v1/{host}`` (the pull-mode platform's address) is the same poll. Attacked with a
wrong token, another host's token, a user name naming another host, malformed headers and a
user token; a real ``ferryman serve`` is driven by the real ``curl``."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ferryman.db.models import AgentTask, Deploy, Project
from ferryman.services import agents
from ferryman.services.audit import SYSTEM
from tests.api.world import SPACE, World, build_world
from tests.helpers import running_server


@dataclass
class Hosts:
    world: World
    client: TestClient
    busy: str  # a host with a due deploy
    busy_token: str
    idle: str  # a host with nothing due
    idle_token: str
    task_id: int


def _basic(user: str, token: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{token}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    from ferryman.app import create_app

    w = build_world(tmp_path_factory.mktemp("agent-credentials"))
    busy = agents.register(w.db, SYSTEM, SPACE, "web1.example.com")
    idle = agents.register(w.db, SYSTEM, SPACE, "web2.example.com")
    deploy_id = w.queued_deploy()
    with w.db.transaction() as s:  # what the worker's pull stage leaves: a task due
        deploy = s.get(Deploy, deploy_id)
        assert deploy is not None
        project = s.get(Project, deploy.project_id)
        assert project is not None
        task = AgentTask(
            deploy_id=deploy_id,
            space_id=project.space_id,
            host=busy["host"],
            release="20260101-000000",
            status="due",
        )
        s.add(task)
        s.flush()
        task_id = task.id
    agents.index.forget()
    agents._tokens.clear()
    with TestClient(create_app(w.settings, w.db, embedded_worker=False)) as client:
        yield Hosts(w, client, busy["host"], busy["token"], idle["host"], idle["token"], task_id)
    agents.index.forget()


def _status(hosts: Hosts, task_id: int) -> str:
    with hosts.world.db.read() as s:
        return str(s.scalar(select(AgentTask.status).where(AgentTask.id == task_id)))


def test_head_answers_the_poll_like_get_with_its_headers_and_no_body(hosts):
    bearer = {"Authorization": f"Bearer {hosts.busy_token}"}
    get = hosts.client.get(f"/api/v1/agent/{hosts.busy}", headers=bearer)
    head = hosts.client.head(f"/api/v1/agent/{hosts.busy}", headers=bearer)
    assert get.status_code == head.status_code == 200
    assert get.json() == {"task": hosts.task_id, "deploy": get.json()["deploy"], "action": "deploy"}
    assert head.content == b""
    for name in ("etag", "cache-control", "content-type", "content-length"):
        assert head.headers[name] == get.headers[name], name
    # the ETag a HEAD saw is the one that answers 304, like a GET's
    again = hosts.client.head(
        f"/api/v1/agent/{hosts.busy}", headers={**bearer, "If-None-Match": head.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""
    idle = hosts.client.head(
        f"/api/v1/agent/{hosts.idle}", headers={"Authorization": f"Bearer {hosts.idle_token}"}
    )
    assert idle.status_code == 204 and idle.content == b""
    # polling, by either method, hands nothing out: the task is still due
    assert _status(hosts, hosts.task_id) == "due"


def test_basic_auth_with_the_host_token_polls_like_a_bearer_token(hosts):
    path = f"/api/v1/agent/{hosts.busy}"
    bearer = hosts.client.get(path, headers={"Authorization": f"Bearer {hosts.busy_token}"})
    named = hosts.client.get(path, headers=_basic(hosts.busy, hosts.busy_token))
    unnamed = hosts.client.get(path, headers=_basic("", hosts.busy_token))
    assert bearer.status_code == named.status_code == unnamed.status_code == 200
    assert bearer.json() == named.json() == unnamed.json()


def test_the_platform_address_api_v1_host_is_the_same_poll(hosts):
    answer = hosts.client.head(
        f"/api/v1/{hosts.busy}", headers=_basic(hosts.busy, hosts.busy_token)
    )
    assert answer.status_code == 200 and answer.content == b""
    assert answer.headers["etag"] == f'"task-{hosts.task_id}"'
    get = hosts.client.get(
        f"/api/v1/{hosts.idle}", headers={"Authorization": f"Bearer {hosts.idle_token}"}
    )
    assert get.status_code == 204


def test_an_unknown_address_without_an_agent_credential_stays_a_404(hosts):
    for headers in ({}, {"Authorization": f"Bearer {hosts.world.tokens['super']}"}):
        answer = hosts.client.get("/api/v1/nowhere", headers=headers)
        assert answer.status_code == 404
        assert answer.json()["error"]["message"] == "no such address: /api/v1/nowhere"
    # the platform address never shadows a real route: a user's list of projects still answers
    listed = hosts.client.get(
        "/api/v1/projects", headers={"Authorization": f"Bearer {hosts.world.tokens['super']}"}
    )
    assert listed.status_code == 200


def test_a_wrong_token_by_basic_auth_is_refused_like_a_wrong_bearer_token(hosts):
    path = f"/api/v1/agent/{hosts.busy}"
    basic = hosts.client.get(path, headers=_basic(hosts.busy, "fma_wrong"))
    bearer = hosts.client.get(path, headers={"Authorization": "Bearer fma_wrong"})
    head = hosts.client.head(path, headers=_basic(hosts.busy, "fma_wrong"))
    assert basic.status_code == bearer.status_code == head.status_code == 401
    assert basic.json() == bearer.json()
    assert head.content == b""  # HEAD tells no more than GET: not even the error's text
    assert "task" not in basic.text


def test_another_hosts_token_or_user_name_reads_nothing_of_this_host(hosts):
    path = f"/api/v1/agent/{hosts.busy}"
    for headers in (
        _basic(hosts.busy, hosts.idle_token),  # this host's name, the other's token
        _basic(hosts.idle, hosts.idle_token),  # the other host, whole
        _basic(hosts.idle, hosts.busy_token),  # this host's token, naming the other host
        {"Authorization": f"Bearer {hosts.idle_token}"},
    ):
        for method in ("GET", "HEAD"):
            answer = hosts.client.request(method, path, headers=headers)
            assert answer.status_code == 403, (headers, method, answer.text)
            assert '"task"' not in answer.text
            assert "etag" not in answer.headers
    # nor the platform address, nor the script, which would hand the task out
    stolen = hosts.client.get(
        f"/api/v1/agent/{hosts.busy}/deploy", headers=_basic(hosts.idle, hosts.idle_token)
    )
    assert stolen.status_code == 403
    assert _status(hosts, hosts.task_id) == "due"


@pytest.mark.parametrize(
    "header",
    [
        "Basic",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Basic " + base64.b64encode(b"web1.example.com:").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Bearer",
        "Token abc",
        "fma_abc",
    ],
)
def test_a_malformed_authorization_header_is_a_clear_401(hosts, header):
    answer = hosts.client.get(f"/api/v1/agent/{hosts.busy}", headers={"Authorization": header})
    assert answer.status_code == 401
    assert "Authorization: Bearer TOKEN, or basic auth" in answer.json()["error"]["message"]
    assert '"task"' not in answer.text


def test_head_on_the_script_is_refused_because_fetching_it_hands_the_task_out(hosts):
    bearer = {"Authorization": f"Bearer {hosts.busy_token}"}
    answer = hosts.client.head(f"/api/v1/agent/{hosts.busy}/deploy", headers=bearer)
    assert answer.status_code == 405
    assert _status(hosts, hosts.task_id) == "due"


CURL = ("curl", "-sS", "-m", "10", "-I")


def test_a_cron_line_with_curl_polls_a_real_server_by_head_and_basic_auth(tmp_path: Path):
    w = build_world(tmp_path)
    token = agents.register(w.db, SYSTEM, SPACE, "cron1.example.com")["token"]
    w.db.dispose()
    with running_server(w.settings.home) as url:
        head = subprocess.run(
            [*CURL, "-u", f"cron1.example.com:{token}", f"{url}/api/v1/cron1.example.com"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        wrong = subprocess.run(
            [*CURL, "-u", "cron1.example.com:fma_nope", f"{url}/api/v1/agent/cron1.example.com"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert head.returncode == 0, head.stderr
    assert head.stdout.splitlines()[0].split()[1] == "204", head.stdout
    assert wrong.stdout.splitlines()[0].split()[1] == "401", wrong.stdout
