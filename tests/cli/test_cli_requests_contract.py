"""The CLI cannot drift from the API: every request the CLI makes, in a workflow that uses most
of its commands against a real server and fleet, is an operation the OpenAPI document declares
(method, path, query parameters), and every answer has a declared status and, when it is JSON,
matches the declared schema. The CLI runs in this process so that its HTTP exchanges can be
seen; the server is the real ``ferryman serve``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
import jsonschema_rs
import pytest
import yaml
from typer.testing import CliRunner

from ferryman.cli.main import app
from ferryman.errors import Conflict, NotFound, ValidationError
from tests.cli.conftest import PASSWORD
from tests.helpers import Repo, project_config, unique

pytestmark = pytest.mark.fleet


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    query: tuple[str, ...]
    status: int
    body: Any


def _operation(openapi: dict[str, Any], method: str, path: str) -> tuple[str, dict[str, Any]]:
    for template, item in openapi["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return template, item[method.lower()]
    raise AssertionError(f"the CLI called {method} {path}, which the API does not declare")


def _check(openapi: dict[str, Any], seen: Exchange) -> None:
    template, operation = _operation(openapi, seen.method, seen.path)
    where = f"{seen.method} {template}"
    declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
    assert set(seen.query) <= declared, f"{where}: undeclared query {set(seen.query) - declared}"
    answers = operation["responses"]
    answer = answers.get(str(seen.status)) or answers.get("default")
    assert answer is not None, f"{where} answered {seen.status}, not among {sorted(answers)}"
    schema = answer.get("content", {}).get("application/json", {}).get("schema")
    if schema is None or seen.body is None:
        return
    validator = jsonschema_rs.validator_for({**schema, "components": openapi["components"]})
    problems = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(seen.body)]
    assert not problems, f"{where} {seen.status}: {problems[:3]}"


def test_every_request_the_cli_makes_is_a_declared_operation_answered_as_declared(
    cli, git_host, targets, tmp_path, monkeypatch
):
    cli("admin", "create-user", "carol", "--password", PASSWORD, "--superuser")
    repo = Repo(git_host, tmp_path, unique("contract"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    repo.commit({"index.html": "v2\n"}, tag="v2")
    config = tmp_path / "project.yaml"
    config.write_text(yaml.safe_dump(project_config(repo.name, repo.url, targets)))

    seen: list[Exchange] = []
    send = httpx.Client.send

    def recorded(client: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = send(client, request, **kwargs)
        response.read()
        json_body = "json" in response.headers.get("content-type", "")
        seen.append(
            Exchange(
                request.method,
                request.url.path,
                tuple(k for k, _ in request.url.params.multi_items()),
                response.status_code,
                response.json() if json_body and response.content else None,
            )
        )
        return response

    monkeypatch.setattr(httpx.Client, "send", recorded)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "contract-config"))
    for name in ("FERRYMAN_URL", "FERRYMAN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()

    def run(*args: str, refused: type[Exception] | None = None) -> str:
        """A command in this process (``ferryman``'s entry point turns a refusal into one
        line and an exit status; here it is the exception)."""
        result = runner.invoke(app, list(args))
        if refused is None:
            assert result.exit_code == 0, (args, result.exit_code, result.output)
        else:
            assert isinstance(result.exception, refused), (args, result.exception)
        return result.output

    env = ("--env", "production")
    run("login", "--server", cli.url, "--username", "carol", "--password", PASSWORD)
    run("apply", "-f", str(config), "--dry-run")
    run("apply", "-f", str(config))
    run("env", "set", "production", "--no-approval")
    run("check", repo.name, *env)
    run("refs", repo.name)
    run("deploy", repo.name, *env, "--ref", "v1", "--wait")
    run("deploy", repo.name, *env, "--ref", "v2", "--wait")
    run("rollback", repo.name, *env, "--wait")
    run("retry", "1", refused=Conflict)  # a successful deploy has nothing to retry
    run("promote", "2", "--to", "production", refused=ValidationError)  # already there
    for command in (
        ("projects",),
        ("deploys", "--project", repo.name, "--status", "success"),
        ("deploy", "show", "1"),
        ("logs", "1"),
        ("releases", repo.name, *env, "--verify"),
        ("space", "list"),
        ("env", "list"),
        ("server", "list"),
        ("user", "list"),
        ("token", "list"),
        ("secret", "list", repo.name, *env),
        ("ticket", "list"),
        ("notify", "list"),
        ("notify", "summary"),
        ("audit",),
        ("stats",),
        ("servers",),
    ):
        run(*command)
    run("deploy", "show", "999999", refused=NotFound)  # a 404, in the declared envelope

    assert len(seen) > 30 and {x.method for x in seen} >= {"GET", "POST"}
    for exchange in seen:
        _check(cli.openapi, exchange)
