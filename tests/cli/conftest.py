"""Fixtures of the CLI tests: a real ``ferryman serve`` and the real executable against it,
run as a CI job would (pipes, no terminal), with the OpenAPI document the server declares."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest

from tests.cli.contract import environment, run
from tests.helpers import running_server

PASSWORD = "correct horse battery"


@dataclass
class Cli:
    """``ferryman`` against one running server; ``user`` selects a credentials file."""

    url: str
    env: dict[str, str]
    tmp: Path
    openapi: dict[str, Any]

    def __call__(
        self, *args: str, check: bool = True, user: str = "", stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if user:
            env["XDG_CONFIG_HOME"] = str(self.tmp / "config" / user)
        result = run(env, *args, stdin=stdin)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def json(self, *args: str, schema: str, code: int = 0, user: str = "") -> Any:
        """Run a command with ``--json``: stdout must be exactly one JSON document valid
        against the API's declared ``schema`` (a component, or ``list[Component]``)."""
        result = self(*args, "--json", check=False, user=user)
        assert result.returncode == code, (args, result.returncode, result.stdout, result.stderr)
        data = json.loads(result.stdout)  # one document: anything else fails here
        self.validate(data, schema)
        return data

    def validate(self, data: Any, schema: str) -> None:
        validate(self.openapi, data, schema)


def validate(openapi: dict[str, Any], data: Any, schema: str) -> None:
    """``data`` against the component ``schema`` of the OpenAPI document (``list[X]``: an
    array of X)."""
    ref: dict[str, Any]
    if schema.startswith("list[") and schema.endswith("]"):
        ref = {"type": "array", "items": {"$ref": f"#/components/schemas/{schema[5:-1]}"}}
    else:
        ref = {"$ref": f"#/components/schemas/{schema}"}
    validator = jsonschema_rs.validator_for({**ref, "components": openapi["components"]})
    errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(data)]
    assert not errors, f"not a valid {schema}: {errors[:5]}"


@pytest.fixture
def cli(settings, tmp_path: Path) -> Iterator[Cli]:
    env = environment(tmp_path, FERRYMAN_HOME=str(settings.home))
    with running_server(settings.home, {"XDG_CONFIG_HOME": env["XDG_CONFIG_HOME"]}) as url:
        openapi = httpx.get(url + "/openapi.json", timeout=30).json()
        yield Cli(url, env, tmp_path, openapi)


@pytest.fixture
def signed_in(cli: Cli) -> Callable[[str, str | None], None]:
    """``signed_in(user, role)``: make the user (a superuser when role is None) and log in
    with that user's own credentials file."""

    def sign_in(user: str, role: str | None = None) -> None:
        extra = ["--superuser"] if role is None else []
        cli("admin", "create-user", user, "--password", PASSWORD, *extra)
        if role is not None:
            cli("admin", "add-member", "default", user, "--role", role)
        cli("login", "--server", cli.url, "--username", user, "--password", PASSWORD, user=user)

    return sign_in
