"""Another space's ids cannot be told from ids that do not exist. A member of space ``acme``
walks the id routes of deploys, servers, environments and notification channels — reading
and mutating ones alike — with ids of space ``other`` and with ids nobody has: every answer
must be the same, status and body byte for byte apart from the id. A difference (a 403
instead of a 404, a state checked before the space, a message worded otherwise) would let
anyone enumerate which ids exist elsewhere and what state they are in.

The routes are read from the app itself (every ``/api/v1`` path with one of these ids), the
request bodies from the authorization matrix's recipes (``tests/api/world.py``), so a new
route is attacked the day it is added."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from ferryman.app import create_app
from ferryman.config.project import parse_project
from ferryman.db.models import Deploy, Environment, NotifyChannel, Server
from ferryman.domain.rollout import Rollout
from ferryman.domain.statuses import DeployStatus
from ferryman.outbound import Outbound
from ferryman.services import deploys, inventory, notifications, projects
from ferryman.services.audit import SYSTEM
from tests.api.test_authorization import ROUTES
from tests.api.world import RECIPES, World, build_world, fresh

OTHER = "other"  # the space the attacker is no member of
ATTACKERS = ("reporter", "developer", "master", "owner")  # of space acme
KINDS = ("deploy_id", "server_id", "env_id", "channel_id")
MISSING = 987_654  # an id nobody has (below MAX_ID: a real lookup, not a 422)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, TestClient]]:
    w = build_world(Path(tmp_path_factory.mktemp("hidden-ids")))
    with TestClient(create_app(w.settings, w.db, embedded_worker=False)) as client:
        yield w, client
    w.db.dispose()


@pytest.fixture
def world(served: tuple[World, TestClient]) -> tuple[World, TestClient]:
    """The module's world and client, the world's rows as ``build_world`` left them."""
    served[0].restore()
    return served


def _other_project(w: World) -> int:
    name = fresh("elsewhere")
    project, _ = projects.apply_project(w.db, SYSTEM, parse_project(w.config(name, OTHER)))
    return project.id


def _other_deploy(w: World, status: DeployStatus) -> int:
    """A deploy of space ``other`` left in ``status`` (each state a route may check)."""
    deploy_id = deploys.request_deploy(w.db, SYSTEM, _other_project(w), "staging", "v1").id
    if status == DeployStatus.QUEUED:
        return deploy_id
    with w.db.transaction() as s:
        deploy = s.get(Deploy, deploy_id)
        assert deploy is not None
        deploy.status = DeployStatus.RUNNING
        if status == DeployStatus.PAUSED:  # a gray release after its canary
            state = Rollout(
                batches=[["127.0.0.1:1"], ["127.0.0.2:1"]], next_batch=1, state="paused"
            )
            deploy.status, deploy.rollout = status, state.to_dict()
    if status in (DeployStatus.SUCCESS, DeployStatus.FAILED):
        error = None if status == DeployStatus.SUCCESS else {"code": "x", "message": "broken"}
        deploys.finish(w.db, deploy_id, status, error)
    return deploy_id


def _hidden(w: World, kind: str) -> list[int]:
    """Ids of space ``other``: for deploys, one in each state a route may look at."""
    if kind == "deploy_id":
        return [
            _other_deploy(w, status)
            for status in DeployStatus
            if status is not DeployStatus.CANCELLED
        ]
    if kind == "server_id":
        return [int(inventory.create_server(w.db, SYSTEM, OTHER, fresh("srv"), "10.9.9.9")["id"])]
    if kind == "env_id":
        return [int(inventory.create_environment(w.db, SYSTEM, OTHER, fresh("env"))["id"])]
    channel = notifications.save_channel(
        w.db,
        SYSTEM,
        OTHER,
        fresh("chan"),
        "slack",
        {"url": "http://127.0.0.1:9/x"},  # loopback: never reached (and refused first)
        outbound=Outbound(allow=w.settings.outbound_allow),
    )
    return [int(channel["id"])]


def _id_routes() -> list[tuple[str, str, str]]:
    """(method, path, the id it takes) of every API route taking one of ``KINDS``."""
    out = []
    for method, path, _action in ROUTES:
        taken = [k for k in KINDS if "{" + k + "}" in path]
        if taken:
            out.append((method, path, taken[0]))
    return sorted(out)


ID_ROUTES = _id_routes()


def test_every_kind_has_reading_and_mutating_routes():
    kinds = {(kind, method == "GET") for method, _, kind in ID_ROUTES}
    assert kinds == {(k, reads) for k in KINDS for reads in (True, False)}, kinds


def _call(
    client: TestClient, w: World, who: str, method: str, url: str, body: Any
) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {w.tokens[who]}"}
    answer = client.request(method, url, json=body, headers=headers)
    return answer.status_code, answer.content


def _without(content: bytes, the_id: int) -> bytes:
    return re.sub(rb"(?<![0-9])%d(?![0-9])" % the_id, b"<id>", content)


@pytest.mark.parametrize(
    ("method", "path", "kind"), ID_ROUTES, ids=[f"{m} {p}" for m, p, _ in ID_ROUTES]
)
def test_an_id_of_another_space_is_refused_exactly_as_a_missing_one(world, method, path, kind):
    w, client = world
    recipe = RECIPES[(method, path)]
    _, example, body = recipe(w, "developer")  # a body the route accepts
    query = urlsplit(example).query
    hidden = _hidden(w, kind)

    def url(the_id: int) -> str:
        return str(path).replace("{" + kind + "}", str(the_id)) + (f"?{query}" if query else "")

    for who in ATTACKERS:
        missing_status, missing = _call(client, w, who, method, url(MISSING), body)
        assert missing_status == 404, (who, missing)
        for the_id in hidden:
            status, content = _call(client, w, who, method, url(the_id), body)
            assert (status, _without(content, the_id)) == (
                missing_status,
                _without(missing, MISSING),
            ), f"{who} tells #{the_id} of space {OTHER} from a missing id"


def test_the_console_stream_closes_alike_for_another_spaces_deploy_and_a_missing_one(world):
    from ferryman.api.deps import WEBSOCKET_ACTIONS

    w, client = world
    assert list(WEBSOCKET_ACTIONS) == ["/api/v1/deploys/{deploy_id}/stream"]  # the only one

    def closed(who: str, the_id: int) -> tuple[int, str]:
        headers = {"Authorization": f"Bearer {w.tokens[who]}"}
        url = f"/api/v1/deploys/{the_id}/stream"
        with (
            client.websocket_connect(url, headers=headers) as ws,
            pytest.raises(WebSocketDisconnect) as refused,
        ):
            ws.receive_json()
        reason = _without(refused.value.reason.encode(), the_id).decode()
        return refused.value.code, reason

    hidden = _hidden(w, "deploy_id")
    for who in ATTACKERS:
        missing = closed(who, MISSING)
        assert missing[0] == 4404, missing
        for the_id in hidden:
            assert closed(who, the_id) == missing, (who, the_id)


NAMED = {"servers": "server_id", "environments": "env_id", "channels": "channel_id"}


def _named_routes() -> list[tuple[str, str, str]]:
    """(method, path, kind) of the canonical addresses: ``/spaces/{space}/<kind>/{name}…``."""
    out = []
    for method, path, _action in ROUTES:
        found = re.match(r"^/api/v1/spaces/\{space\}/(\w+)/\{name\}", path)
        if found and found.group(1) in NAMED:
            out.append((method, path, found.group(1)))
    return sorted(out)


NAMED_ROUTES = _named_routes()


@pytest.mark.parametrize(
    ("method", "path", "kind"), NAMED_ROUTES, ids=[f"{m} {p}" for m, p, _ in NAMED_ROUTES]
)
def test_a_name_in_another_space_is_refused_as_one_in_a_space_nobody_has(world, method, path, kind):
    w, client = world
    _, example, body = RECIPES[(method, path)](w, "developer")
    query = urlsplit(example).query
    table = {"servers": Server, "environments": Environment, "channels": NotifyChannel}[kind]
    with w.db.read() as s:
        row = s.get(table, _hidden(w, NAMED[kind])[0])
        assert row is not None
        name = str(row.name)

    def url(space: str, the_name: str) -> str:
        shown = str(path).replace("{space}", space).replace("{name}", the_name)
        return shown + (f"?{query}" if query else "")

    for who in ATTACKERS:
        status, hidden = _call(client, w, who, method, url(OTHER, name), body)
        assert status == 404, (who, hidden)
        # a name nobody has there, and a space nobody has: the same answer
        assert _call(client, w, who, method, url(OTHER, "nobody-has-this"), body) == (
            status,
            hidden,
        ), who
        nowhere = _call(client, w, who, method, url("nowhere", name), body)
        assert nowhere == (status, hidden.replace(b"'other'", b"'nowhere'")), who
