"""The authorization matrix: every API route × every role, the expectation generated from the
permissions table (``ferryman.domain.permissions``), so the table and the server cannot drift."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ferryman.app import create_app
from ferryman.domain.permissions import ACTIONS, PUBLIC, SUPER, USER, Role, role_allows
from ferryman.testing import databases
from tests.api.world import RECIPES, ROLES, World, build_world
from tests.helpers import document_app


@pytest.fixture(scope="module")
def world(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One world per database backend. The whole role matrix runs on SQLite (who may do what
    is decided in Python, the same on every backend); on PostgreSQL and MariaDB every route
    runs as a superuser (reading routes here, mutating ones in the audit test), so each
    route's SQL meets every dialect, and the WebSocket check runs on all three."""
    base = Path(tmp_path_factory.mktemp("matrix"))
    url = databases.create(backend, base)
    w = build_world(base, url)
    yield w
    w.db.dispose()
    databases.drop(url)


@pytest.fixture(scope="module")
def served(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(world.settings, world.db, embedded_worker=False)) as c:
        yield c


@pytest.fixture
def client(served: TestClient, world: World) -> TestClient:
    """The module's client, on its world as ``build_world`` left it (SQLite; ``restore``)."""
    world.restore()
    return served


def api_operations() -> list[tuple[str, str, str]]:
    """(method, path, action) of every /api/v1 operation, read from the OpenAPI document of an
    app built only to be read (``document_app``: no server runs)."""
    return [
        (method.upper(), path, operation.get("x-permission", "?"))
        for path, item in document_app().openapi()["paths"].items()
        if path.startswith("/api/v1")
        for method, operation in item.items()
    ]


ROUTES = api_operations()


def expected(action: str, role: str) -> int | None:
    """The status a denied call must get (401, 403 or 404), or None when it is allowed."""
    needs = ACTIONS[action].needs
    if needs == PUBLIC:
        return None
    if role == "anonymous":
        return 401
    if role == "super" or needs == USER:
        return None
    if needs == SUPER:
        return 403
    if role == "other":  # a member of another space: the resource is invisible
        return 404
    return None if role_allows(Role[role], action) else 403


def test_every_api_route_names_an_action_of_the_permissions_table():
    assert len(ROUTES) > 50
    for method, path, action in ROUTES:
        assert action in ACTIONS, f"{method} {path} names no known action"


def test_every_api_route_has_a_request_recipe_in_the_matrix():
    assert {(m, p) for m, p, _ in ROUTES} == set(RECIPES)


# The allow/deny answers come from ``authz`` and the permissions table, in Python: one backend
# holds them. (Seven roles × every route × three backends was a fifth of the suite's time.)
ONE_BACKEND = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@ONE_BACKEND
@pytest.mark.parametrize(
    ("method", "path", "action"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES]
)
def test_each_role_is_allowed_or_denied_exactly_as_the_table_says(
    client: TestClient, world: World, method: str, path: str, action: str
):
    for role in ROLES:
        verb, url, body = RECIPES[(method, path)](world, role)
        headers = {} if role == "anonymous" else {"Authorization": f"Bearer {world.tokens[role]}"}
        client.cookies.clear()  # a session cookie from /auth/session must not carry over
        response = client.request(verb, url, json=body, headers=headers)
        deny = expected(action, role)
        if deny is None:  # every recipe is a valid request: allowed means it succeeds
            assert 200 <= response.status_code < 300, (
                f"{role} should be allowed {action} ({verb} {url}): "
                f"{response.status_code} {response.text[:300]}"
            )
        else:
            assert response.status_code == deny, (
                f"{role} should get {deny} for {action} ({verb} {url}): "
                f"{response.status_code} {response.text[:300]}"
            )


READING = [(m, p, a) for m, p, a in ROUTES if m == "GET"]


@pytest.mark.parametrize(
    ("method", "path", "action"), READING, ids=[f"{m} {p}" for m, p, _ in READING]
)
def test_every_reading_route_answers_a_superuser_on_every_backend(
    client: TestClient, world: World, method: str, path: str, action: str
):
    """The matrix's allowed answer on every backend: each reading route's queries run on
    SQLite, PostgreSQL and MariaDB (the mutating ones do in the audit test below)."""
    verb, url, body = RECIPES[(method, path)](world, "super")
    client.cookies.clear()
    response = client.request(
        verb, url, json=body, headers={"Authorization": f"Bearer {world.tokens['super']}"}
    )
    assert 200 <= response.status_code < 300, (
        f"super should be allowed {action} ({verb} {url}): "
        f"{response.status_code} {response.text[:300]}"
    )


def test_the_permissions_document_holds_the_table_the_server_enforces():
    from ferryman.domain.permissions import markdown_table

    doc = (Path(__file__).parents[2] / "docs" / "permissions.md").read_text()
    assert markdown_table() in doc


MUTATING = [(m, p, a) for m, p, a in ROUTES if m != "GET"]


@pytest.mark.parametrize(
    ("method", "path", "action"), MUTATING, ids=[f"{m} {p}" for m, p, _ in MUTATING]
)
def test_every_mutating_endpoint_writes_an_audit_row_with_actor_and_address(
    client: TestClient, world: World, method: str, path: str, action: str
):
    from sqlalchemy import func, select

    from ferryman.db.models import AuditEntry

    def entries(after: int = 0) -> list[AuditEntry]:
        with world.db.read() as s:
            query = select(AuditEntry).where(AuditEntry.id > after).order_by(AuditEntry.id)
            return list(s.scalars(query))

    def last() -> int:
        with world.db.read() as s:
            return int(s.scalar(select(func.max(AuditEntry.id))) or 0)

    verb, url, body = RECIPES[(method, path)](world, "super")  # setup may audit too
    before = last()
    headers = {"Authorization": f"Bearer {world.tokens['super']}"}
    if action == "auth.login":
        headers = {}
    client.cookies.clear()
    response = client.request(verb, url, json=body, headers=headers)
    assert 200 <= response.status_code < 300, response.text[:300]
    new = entries(after=before)
    assert new, f"{verb} {url} changed something without an audit row"
    who = "reporter-user" if action == "auth.login" else "super-user"
    assert any(e.actor == who and e.ip == "testclient" for e in new), [
        (e.actor, e.action, e.ip) for e in new
    ]


def test_nothing_in_the_api_edits_or_deletes_the_audit_log():
    assert not [p for m, p, _ in ROUTES if p.startswith("/api/v1/audit") and m != "GET"]


def test_the_websocket_stream_is_authorised_like_the_rest(client: TestClient, world: World):
    from starlette.websockets import WebSocketDisconnect

    from ferryman.api.deps import WEBSOCKET_ACTIONS

    assert WEBSOCKET_ACTIONS == {"/api/v1/deploys/{deploy_id}/stream": "deploy.read"}
    for path, action in WEBSOCKET_ACTIONS.items():
        for role in ROLES:
            url = path.format(deploy_id=world.queued_deploy())
            headers = (
                {} if role == "anonymous" else {"Authorization": f"Bearer {world.tokens[role]}"}
            )
            client.cookies.clear()
            deny = expected(action, role)
            with client.websocket_connect(url, headers=headers) as ws:
                if deny is None:
                    assert ws.receive_json()["type"] == "deploy", role
                else:
                    with pytest.raises(WebSocketDisconnect) as closed:
                        ws.receive_json()
                    assert closed.value.code == 4000 + deny, role
