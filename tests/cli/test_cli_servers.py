"""Credentials per server URL: logged in to two servers at once, the last login is the
default, ``--server`` and ``FERRYMAN_URL`` pick the other; a file of the first release (one
server) still reads."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import PASSWORD
from tests.cli.contract import run
from tests.helpers import running_server

pytestmark = pytest.mark.fleet


def _envs(cli, *args: str, **extra: str) -> set[str]:
    env = dict(cli.env, **extra)
    result = run(env, *args, "env", "list", "--json")
    assert result.returncode == 0, result.stderr
    return {row["name"] for row in json.loads(result.stdout)}


def test_two_servers_side_by_side_and_the_one_each_command_talks_to(cli, tmp_path):
    a = cli.url
    home_b = tmp_path / "home-b"
    with running_server(home_b, {"XDG_CONFIG_HOME": cli.env["XDG_CONFIG_HOME"]}) as b:
        for home in (cli.env["FERRYMAN_HOME"], str(home_b)):
            made = run(
                dict(cli.env, FERRYMAN_HOME=home),
                "admin",
                "create-user",
                "alice",
                "--password",
                PASSWORD,
                "--superuser",
            )
            assert made.returncode == 0, made.stderr
        for url in (a, b):
            cli("login", "--server", url, "--username", "alice", "--password", PASSWORD)
        listed = json.loads(cli("servers", "--json").stdout)
        assert listed == [
            {"url": u, "username": "alice", "default": u == b} for u in sorted((a, b))
        ]
        cli("--server", a, "env", "create", "only-on-a")
        assert "only-on-a" not in _envs(cli)  # the default: the last login, b
        assert "only-on-a" in _envs(cli, "--server", a)
        assert "only-on-a" in _envs(cli, FERRYMAN_URL=a)

        cli("logout", "--server", b)
        assert "only-on-a" in _envs(cli)  # a is the default now
        refused = run(dict(cli.env, FERRYMAN_URL=b), "env", "list")
        assert refused.returncode == 2
        assert f"not logged in to {b}: run `ferryman login --server {b}`" in refused.stderr
        stored = json.loads((tmp_path / "config" / "ferryman" / "credentials.json").read_text())
        assert set(stored["servers"]) == {a}


def test_a_credentials_file_of_the_first_release_still_works(cli, signed_in, tmp_path):
    signed_in("alice")
    path = tmp_path / "config" / "alice" / "ferryman" / "credentials.json"
    new = json.loads(path.read_text())
    entry = new["servers"][cli.url]
    path.write_text(json.dumps({"url": cli.url, **entry}))  # the old shape: one server
    assert cli("env", "list", "--json", user="alice").returncode == 0
    assert json.loads(cli("servers", "--json", user="alice").stdout)[0]["url"] == cli.url


def test_servers_are_removed_by_name_or_by_the_old_id(cli, signed_in):
    signed_in("alice")
    a = {"user": "alice"}
    cli("server", "add", "by-name", "127.0.110.98", **a)
    made = cli("server", "add", "by-id", "127.0.110.99", **a).stdout
    old_id = made.split("#")[1].split(",")[0]
    assert "removed server by-name from default" in cli("server", "remove", "by-name", **a).stdout
    assert f"removed server #{old_id}" in cli("server", "remove", old_id, **a).stdout
    assert json.loads(cli("server", "list", "--json", **a).stdout) == []
    gone = cli("server", "remove", "by-name", check=False, **a)
    assert gone.returncode == 2 and "has no server 'by-name'" in gone.stderr
