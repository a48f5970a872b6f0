"""The API's shape as a client relies on it: the error envelope documented as it is sent,
unknown query parameters refused, list filters and paging headers."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from ferryman.app import create_app
from tests.conftest import set_approval
from tests.helpers import Repo, apply, create_admin, project_config, unique


@pytest.fixture
def client(db, settings):
    create_admin(db)
    with TestClient(create_app(settings, db, embedded_worker=False)) as c:
        token = c.post(
            "/api/v1/auth/login", json={"username": "alice", "password": "correct horse battery"}
        ).json()["token"]
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


def test_openapi_documents_the_error_envelope_the_server_sends(client):
    doc = client.get("/openapi.json").json()
    envelope = "#/components/schemas/ErrorEnvelope"
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, item in doc["paths"].items():
        if not path.startswith("/api/v1/"):
            continue  # /healthz, /readyz: probes, not the API
        for method, op in item.items():
            for status in ("401", "403", "404", "409", "422"):
                content = op["responses"][status]["content"]["application/json"]
                assert content["schema"] == {"$ref": envelope}, (method, path, status)
    sent = client.get("/api/v1/deploys/999999").json()
    assert set(sent) == {"error"}
    # a refusal written as a catalogue message also carries its template and values
    assert {"code", "message", "details"} <= set(sent["error"])
    assert set(sent["error"]) <= {"code", "message", "details", "template", "params"}
    assert sent["error"]["code"] == "not_found"


def test_every_integer_parameter_is_bounded_below_what_a_database_column_holds(client):
    """A number past 2**63 - 1 reached SQLite as an OverflowError (a 500): every integer in a
    path or query string declares a maximum the databases can hold."""
    doc = client.get("/openapi.json").json()
    unbounded = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for param in op.get("parameters", []):
                schema = param.get("schema", {})
                kinds = [schema, *schema.get("anyOf", [])]
                for kind in kinds:
                    if kind.get("type") == "integer" and kind.get("maximum", 2**64) > 2**63 - 1:
                        unbounded.append((method, path, param["name"]))
    assert not unbounded


def test_a_config_diff_asked_between_huge_versions_is_refused_not_a_500(client):
    r = client.get("/api/v1/projects/1/envs/staging/config/diff/app.ini", params={"from": 2**64})
    assert r.status_code == 422, r.text


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/api/v1/users/{n}", {"email": "x@example.com"}),
        ("GET", "/api/v1/spaces/{n}", None),
        ("GET", "/api/v1/projects/{n}", None),
        ("GET", "/api/v1/groups/{n}", None),
        ("GET", "/api/v1/audit?project={n}", None),
    ],
)
def test_a_reference_past_every_id_column_is_not_found_not_a_500(client, method, path, body):
    for number in (2**31, 2**63, 10**30):
        r = client.request(method, path.format(n=number), json=body)
        if "?" in path:  # a filter that matches nothing
            assert r.status_code == 200 and not r.json(), (number, r.text)
        else:
            assert r.status_code == 404, (number, r.status_code, r.text)


def test_an_unknown_query_parameter_is_refused_naming_it(client):
    r = client.get("/api/v1/deploys", params={"stauts": "failed"})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["message"].startswith("unknown query parameter: stauts (known: ")
    assert error["details"]["errors"] == [
        {
            "loc": ["query", "stauts"],
            "code": "unknown_parameter",
            "message": "not a parameter of GET /api/v1/deploys",
        }
    ]
    assert client.get("/api/v1/deploys", params={"status": "failed"}).status_code == 200


def test_a_query_parameter_given_twice_is_refused_not_read_as_its_last_value(client):
    # ``?status=failed&status=success`` would otherwise list only the successes
    for path, name in (("/api/v1/deploys", "status"), ("/api/v1/stats", "env")):
        r = client.get(path + f"?{name}=a&{name}=b")
        assert r.status_code == 422, (path, r.text)
        error = r.json()["error"]
        assert error["code"] == "invalid_input"
        assert error["message"] == (
            f"query parameter given more than once: {name} (it takes one value)"
        )
        assert error["details"]["errors"] == [
            {"loc": ["query", name], "code": "repeated", "message": "give it once"}
        ]
    assert client.get("/api/v1/stats?env=production").status_code == 200


def test_bad_input_lists_each_error_as_loc_code_message(client):
    r = client.get("/api/v1/deploys", params={"limit": "many", "status": "gone"})
    assert r.status_code == 422
    errors = r.json()["error"]["details"]["errors"]
    assert {tuple(e["loc"]) for e in errors} == {("query", "limit"), ("query", "status")}
    assert all(set(e) == {"loc", "code", "message"} for e in errors)
    body = client.post("/api/v1/projects/x/deploys", json={"ref": "v1"}).json()["error"]
    assert {"loc": ["body", "env"], "code": "missing", "message": "Field required"} in body[
        "details"
    ]["errors"]


def _next(response) -> str | None:
    link = response.headers.get("link", "")
    return link.split(";")[0].strip("<>") if 'rel="next"' in link else None


def test_deploys_and_tickets_page_with_a_cursor_and_a_total_and_filter(
    client, db, git_host, targets, tmp_path
):
    repo = Repo(git_host, tmp_path, unique("paging"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, targets))
    made = []
    for _ in range(3):  # one active deploy per environment: each cancelled before the next
        d = client.post(
            f"/api/v1/projects/{repo.name}/deploys", json={"env": "production", "ref": "v1"}
        )
        assert d.status_code == 201, d.text
        made.append(d.json()["id"])
        client.post(f"/api/v1/deploys/{made[-1]}/cancel", json={"reason": "paging"})
    first = client.get("/api/v1/deploys", params={"project": repo.name, "limit": 2})
    assert first.headers["x-total-count"] == "3"
    assert [d["id"] for d in first.json()] == made[:0:-1]
    second = client.get(_next(first))
    assert [d["id"] for d in second.json()] == made[:1] and _next(second) is None
    for params, count in (
        ({"status": "cancelled"}, 3),
        ({"status": "success"}, 0),
        ({"user": "alice"}, 3),
        ({"user": "bob"}, 0),
        ({"env": "staging"}, 0),
        ({"since": "2099-01-01T00:00:00Z"}, 0),
    ):
        r = client.get("/api/v1/deploys", params={"project": repo.name, **params})
        assert r.status_code == 200 and len(r.json()) == count, (params, r.text)
        assert r.headers["x-total-count"] == str(count)

    set_approval(db, "production", True)
    for title in ("a", "b", "c"):
        body = {"project": repo.name, "env": "production", "ref": "v1", "title": title}
        assert client.post("/api/v1/tickets", json=body).status_code == 201
    page = client.get("/api/v1/tickets", params={"project": repo.name, "limit": 2})
    assert page.headers["x-total-count"] == "3" and [t["title"] for t in page.json()] == ["c", "b"]
    rest = client.get(_next(page))
    assert [t["title"] for t in rest.json()] == ["a"]
    pending = {"project": repo.name, "status": "pending_approval", "user": "alice"}
    assert len(client.get("/api/v1/tickets", params=pending).json()) == 3
    assert client.get("/api/v1/tickets", params={"status": "nonsense"}).status_code == 422


def test_unbounded_lists_page_by_number_with_a_total(client):
    for n in range(3):
        body = {"space": "default", "name": f"srv{n}", "address": f"10.9.0.{n}"}
        assert client.post("/api/v1/servers", json=body).status_code == 201
    first = client.get("/api/v1/servers", params={"per_page": 2})
    assert first.headers["x-total-count"] == "3" and len(first.json()) == 2
    rest = client.get(_next(first))
    assert len(rest.json()) == 1 and _next(rest) is None
    assert client.get("/api/v1/servers").json() == first.json() + rest.json()  # one page


def test_a_deploy_of_a_ref_the_repository_lacks_is_refused_when_asked(
    client, db, git_host, targets, tmp_path
):
    repo = Repo(git_host, tmp_path, unique("refcheck"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, targets))
    url = f"/api/v1/projects/{repo.name}/deploys"
    r = client.post(url, json={"env": "production", "ref": "v9", "check_ref": True})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "invalid_input" and "'v9' does not exist" in error["message"]
    assert error["details"]["ref"] == "v9"
    assert [(e["loc"], e["code"]) for e in error["details"]["errors"]] == [
        (["body", "ref"], "unknown_ref")
    ]
    assert client.get("/api/v1/deploys", params={"project": repo.name}).json() == []
    ok = client.post(url, json={"env": "production", "ref": "v1", "check_ref": True})
    assert ok.status_code == 201 and ok.json()["ref"] == "v1"
    # not asked: queued as before, and failed later by the worker
    client.post(f"/api/v1/deploys/{ok.json()['id']}/cancel", json={})
    later = client.post(url, json={"env": "production", "ref": "v9"})
    assert later.status_code == 201
