"""The ``ferryman`` command starts fast: what a command does not use, it does not import.

Each case runs the command in a fresh interpreter and reports which libraries ended up in
``sys.modules`` — a test of imports, not of time (``benchmarks/cli_startup.py`` has the
figures)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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
