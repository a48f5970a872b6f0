"""The OpenAPI document is the contract: Schemathesis generates requests for the API's
operations from it, and every answer must match what it declares — the success model, or the
error envelope with its status — and none may be a 500.

Operations that would reach out of this machine with generated values (scanning a server's
host key, a repository host, a test notification, a repository's refs, checks over SSH) or
store a generated destination (a server address, a channel URL, a project's hosts) are not
given generated bodies: each of those is called with a refused request instead, whose answer
must still be the declared envelope (``test_every_operation_refuses_in_the_declared_shape``);
the success answers of those are what the CLI tests validate against the same schemas."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import jsonschema_rs
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis import checks

from ferryman.app import create_app
from ferryman.bootstrap import attach_key
from ferryman.config.settings import load_settings
from ferryman.db.session import Database
from ferryman.errors import FerrymanError
from ferryman.secretbox import SecretBox, load_key
from ferryman.services import users
from ferryman.services.audit import SYSTEM
from ferryman.testing.databases import SqliteState
from tests.conftest import SANDBOX_UID_BASE, set_approval
from tests.helpers import create_admin, document_app

# (method, path) of operations whose generated values would reach, or name, a destination
REACHES_OUT = {
    ("GET", "/api/v1/servers/{server_id}/host-key"),
    ("POST", "/api/v1/servers/{server_id}/host-key"),
    ("POST", "/api/v1/spaces/{space}/repo-hosts"),
    ("POST", "/api/v1/channels/{channel_id}/test"),
    ("GET", "/api/v1/projects/{project}/refs"),
    ("POST", "/api/v1/projects/{project}/detect"),
    ("POST", "/api/v1/projects/{project}/envs/{env}/check"),
    ("GET", "/api/v1/projects/{project}/envs/{env}/releases"),
    ("GET", "/api/v1/tickets/{ticket_id}/preview"),
    ("POST", "/api/v1/tickets"),
    ("POST", "/api/v1/servers"),
    ("PATCH", "/api/v1/servers/{server_id}"),
    ("PUT", "/api/v1/spaces/{space}/channels/{name}"),
    ("POST", "/api/v1/projects"),
    ("POST", "/api/v1/projects/{project}/copy"),
    # sign-in and password: generated guesses only fill the sign-in limits
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/session"),
    ("POST", "/api/v1/me/password"),
}
PASSWORD = "correct horse battery"
# What the contract means: no 500, only declared statuses and content types, every answer
# (success or error envelope) valid against its declared schema, declared headers present,
# and input the document calls invalid refused. (Routing details of the framework — which
# methods a 405 lists in Allow — are not part of it.)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
]


@dataclass
class Served:
    """One app for the whole module, on one SQLite database that ``restore`` puts back to the
    same first state (the conftest ``db`` fixture's, with alice, a superuser, signed in) before
    each test: every test still starts from a fresh database, and the app — whose routes
    FastAPI builds on its first requests — and its test client are made once."""

    db: Database
    app: FastAPI
    client: TestClient
    token: str
    first: SqliteState

    def restore(self) -> None:
        self.first.restore()
        _TOKENS[id(self.db)] = self.token


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("contract") / "home"
    (home / "ssh").mkdir(parents=True)
    config = load_settings(
        {
            "FERRYMAN_HOME": str(home),
            "FERRYMAN_LOCK_LEASE": "30",
            "FERRYMAN_SANDBOX_UID_BASE": str(SANDBOX_UID_BASE),
        }
    )
    db = Database(config.database_url)
    db.upgrade()
    attach_key(db, SecretBox(load_key(config.home)))
    set_approval(db, "production", False)
    create_admin(db)
    token = users.login(db, "alice", PASSWORD, "contract")
    first = SqliteState(db.url, home.parent / "first.db")
    app = create_app(config, db, embedded_worker=False)
    with TestClient(app) as client:
        yield Served(db, app, client, token, first)
    db.dispose()


@pytest.fixture
def fresh(served: Served) -> Served:
    """The module's app and client on a database put back to its first state."""
    served.restore()
    served.client.cookies.clear()
    return served


# the document is read at collection from the process's document app; the requests go to the
# module's own app (``served``)
schema = (
    schemathesis.openapi.from_asgi("/openapi.json", document_app())
    .exclude(func=lambda ctx: (ctx.operation.method.upper(), ctx.operation.path) in REACHES_OUT)
    .exclude(path_regex=r"^/(healthz|readyz|metrics)")
)


_TOKENS: dict[int, str] = {}


def _token(db) -> str:
    """A token of alice as a superuser. A generated case may have disabled her, dropped her
    rights, reset her password or revoked her tokens: then she is put back and signs in
    again."""
    token = _TOKENS.get(id(db))
    if token is not None:
        try:
            if users.actor_for_token(db, token).is_superuser:
                return token
        except FerrymanError:
            pass
    users.update_user(db, SYSTEM, "alice", is_active=True, is_superuser=True, password=PASSWORD)
    _TOKENS[id(db)] = users.login(db, "alice", PASSWORD, "contract")
    return _TOKENS[id(db)]


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_generated_request_gets_an_answer_the_document_declares(case, fresh):
    headers = {"Authorization": f"Bearer {_token(fresh.db)}"}
    request = case.as_transport_kwargs(headers=headers)
    client = fresh.client
    client.cookies = request.get("cookies") or {}  # the case's own, none left from the last
    response = client.request(
        request["method"],
        request["url"],
        params=request.get("params"),
        headers=request.get("headers"),
        json=request.get("json"),
        content=request.get("data"),
    )
    case.validate_response(response, checks=CHECKS)


def test_every_operation_refuses_in_the_declared_shape(fresh):
    """Every operation, without credentials and with a body that is not even JSON: 401 or
    422, as the declared error envelope — including the ones generation leaves out."""
    client = fresh.client
    doc = client.get("/openapi.json").json()
    envelope = jsonschema_rs.validator_for(
        {"$ref": "#/components/schemas/ErrorEnvelope", "components": doc["components"]}
    )
    seen = 0
    for path, item in doc["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        url = re.sub(r"\{[^}]+\}", "1", path)
        for method, op in item.items():
            r = client.request(method.upper(), url, content=b"{not json")
            assert str(r.status_code) in op["responses"], (method, path, r.status_code)
            assert r.status_code in (401, 422), (method, path, r.status_code, r.text)
            envelope.validate(r.json())
            seen += 1
    assert seen > 80
