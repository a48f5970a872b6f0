"""The ``ferryman`` command starts fast: what a command does not use, it does not import.

Each case runs the command in a fresh interpreter and reports which libraries ended up in
``sys.modules`` — a test of imports, not of time (``benchmarks/cli_startup.py`` has the
figures)."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from typing import Any

import pytest

from ferryman.cli import helptext
from ferryman.cli.main import command

# the server's libraries: a client command never needs them
SERVER_SIDE = ("sqlalchemy", "alembic", "asyncssh", "fastapi", "starlette", "uvicorn", "jinja2")
# what only a command that runs needs: the REST client, the stream, config parsing, keys
RUNNING_ONLY = ("httpx", "websockets", "pydantic", "yaml", "cryptography", "asyncio")

PROBE = """
import json, sys
from ferryman.cli.main import main
sys.argv = ["ferryman", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit:
    pass
loaded = sorted({name.split(".")[0] for name in sys.modules})
print(json.dumps(loaded), file=sys.stderr)
"""


def loaded_by(*argv: str) -> set[str]:
    """The top-level modules imported by ``ferryman ARGV…`` run in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found: list[str] = json.loads(done.stderr.strip().splitlines()[-1])
    assert "ferryman" in found
    return set(found)


@pytest.mark.parametrize(
    "argv",
    [("--help",), ("deploy", "--help"), ("rollback", "--help"), ("space", "--help")],
)
def test_help_imports_none_of_the_server_side_libraries(argv: tuple[str, ...]) -> None:
    assert loaded_by(*argv) & set(SERVER_SIDE) == set()


def test_the_top_level_help_imports_only_what_it_prints_with() -> None:
    assert loaded_by("--help") & set(RUNNING_ONLY) == set()


def test_the_version_imports_neither_the_client_nor_the_server() -> None:
    assert loaded_by("--version") & set(SERVER_SIDE + RUNNING_ONLY) == set()


def _help(tree: Any, argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        tree(argv, prog_name="ferryman", standalone_mode=True)
    return out.getvalue()


def test_a_run_builds_the_commands_of_the_group_it_names_only() -> None:
    rollback = command(["rollback", "web", "--env", "staging"])
    assert rollback.commands["space"].commands == {}
    assert "rollback" in rollback.commands
    space = command(["--server", "http://127.0.0.1:1", "space", "list"])
    assert "list" in space.commands["space"].commands
    assert space.commands["env"].commands == {}
    assert command(["spce"]).commands["space"].commands  # a typo gets the whole tree


def test_every_help_reads_the_same_from_the_tree_a_run_builds() -> None:
    whole = command()
    for path, _cmd in helptext.walk(whole):
        argv = [*path[1:], "--help"]
        assert _help(command(argv), argv) == _help(whole, argv), path
