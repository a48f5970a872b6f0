"""Starting the server: it says only what is true, logs with timestamps (text or JSON), and
refuses bad options with a clear error; scripts/serve starts fast when nothing changed."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.ops.servers import Process, cli

ROOT = Path(__file__).resolve().parents[2]
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO|WARNING|ERROR|DEBUG) \S+: ")


def test_serve_asks_for_a_first_admin_only_while_there_are_no_users(tmp_path):
    home = tmp_path / "home"
    first = Process(home, tmp_path / "first.log")
    with first:
        pass
    said = first.output()
    assert "No users yet. Create the first admin with" in said
    assert "Created the server's SSH key" in said

    cli(home, "admin", "create-user", "alice", "--password", "correct horse battery", "--superuser")
    second = Process(home, tmp_path / "second.log")
    with second:
        pass
    said = second.output()
    assert "Create the first admin" not in said
    assert "Created the server's SSH key" not in said
    assert f"home {home}" in said


def test_text_logs_put_a_utc_timestamp_on_every_line(tmp_path):
    server = Process(tmp_path / "home", tmp_path / "serve.log")
    with server:
        httpx.get(server.url + "/healthz")
    lines = [line for line in server.output().splitlines() if line.strip()]
    assert lines and all(STAMP.match(line) for line in lines), lines
    assert any('"GET /healthz HTTP/1.1" 200' in line for line in lines)


def test_json_logs_are_one_object_a_line_with_a_timestamp(tmp_path):
    server = Process(tmp_path / "home", tmp_path / "serve.log", args=("--log-format", "json"))
    with server:
        httpx.get(server.url + "/healthz")
    records = [json.loads(line) for line in server.output().splitlines() if line.strip()]
    assert records
    for record in records:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["ts"])
        assert record["level"] in ("info", "warning") and record["logger"] and record["message"]
        assert "color_message" not in record
    assert any(r["logger"] == "uvicorn.access" and "/healthz" in r["message"] for r in records)
    assert any(r["logger"] == "ferryman.serve" for r in records)


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (("--forwarded-allow-ips", "*"), {}, "'*' is not an address or network"),
        (("--forwarded-allow-ips", "10.0.0.0/8,proxy"), {}, "'proxy' is not an address"),
        (("--root-path", "/a/../b"), {}, "is not a path like /ferryman"),
        (("--root-path", "ferryman"), {}, "is not a path like /ferryman"),
        (("--log-format", "xml"), {}, "'xml' is not text or json"),
        ((), {"FERRYMAN_LOG_LEVEL": "loud"}, "FERRYMAN_LOG_LEVEL"),
        ((), {"FERRYMAN_WORKER_CONCURRENCY": "0"}, "FERRYMAN_WORKER_CONCURRENCY='0'"),
        ((), {"FERRYMAN_EMBEDDED_WORKER": "perhaps"}, "FERRYMAN_EMBEDDED_WORKER='perhaps'"),
    ],
)
def test_a_bad_option_or_setting_stops_serve_with_an_error_naming_it(tmp_path, args, env, says):
    result = cli(tmp_path / "home", "serve", "--port", "1", *args, check=False, **env)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr


def test_scripts_serve_does_not_reinstall_when_nothing_changed(tmp_path):
    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ROOT / "scripts" / "serve"), "--help"],
            capture_output=True,
            text=True,
            timeout=600,
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path)},
        )

    run()  # installs only if scripts/venv never installed this pyproject.toml
    again = run()
    assert again.returncode == 0, again.stderr
    assert "installing" not in again.stderr
    assert "--forwarded-allow-ips" in again.stdout


@pytest.mark.parametrize(
    ("args", "env", "worker"),
    [
        ((), {"FERRYMAN_EMBEDDED_WORKER": "off"}, False),
        (("--worker",), {"FERRYMAN_EMBEDDED_WORKER": "off"}, True),
        ((), {}, True),
    ],
)
def test_the_embedded_worker_follows_the_setting_unless_an_option_says_otherwise(
    tmp_path, args, env, worker
):
    with Process(tmp_path / "home", tmp_path / "serve.log", args=args, **env) as server:
        import time

        deadline = time.monotonic() + 20
        while True:
            checks = httpx.get(server.url + "/readyz").json()["checks"]
            if not worker or checks.get("worker") == "ok" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert ("worker" in checks) is worker
    assert checks["workers"] == ("1 alive" if worker else "none alive: deploys wait in the queue")
