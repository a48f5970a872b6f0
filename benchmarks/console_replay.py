"""The console's replay of a long log over the WebSocket: a message per line (protocol 1, what an
older CLI asks for) against pages of lines (protocol 2, ``"lines"`` messages).

    .venv/bin/python benchmarks/console_replay.py [--lines 100000] [--rounds 3]
        [--database-url URL]

One finished deploy with ``--lines`` log lines (~90 characters of JSON each; SQLite in a
throwaway home unless ``--database-url`` names another database, which must be empty) is
replayed from the start to its ``end`` message:

- through the ASGI test client in this process (Starlette's ``TestClient``, as the tests and
  ``db_scale.py`` do), and
- through a real ``ferryman serve --no-worker`` on a free 127.0.0.1 port with the CLI's own
  WebSocket client (``websockets``), as ``ferryman logs --follow`` reads it.

Floor: reading the same lines from the database in the stream's pages (1,000 a read, and the
deploy before each) in this process, with nothing sent. Each case runs ``--rounds`` times, the
two protocols in turns so that both see the same load; medians of wall seconds and of CPU
seconds — this process's (the client's; with the test client also the server's) plus, for the
real server, that process's (``/proc/PID/stat``) — and the number of messages. Ratios are
against the floor measured in the same run. CPU is the figure to compare on a shared machine:
wall time includes waiting for a core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import websockets
from fastapi.testclient import TestClient

from ferryman.api.routes.console import PAGE
from ferryman.app import create_app
from ferryman.bootstrap import prepare_home
from ferryman.config.project import parse_project
from ferryman.config.settings import load_settings
from ferryman.db.models import Deploy
from ferryman.db.session import Database
from ferryman.domain.records import LogRecord
from ferryman.services import deploy_views, projects, users
from ferryman.services.audit import SYSTEM
from ferryman.services.deploy_records import write_batch

Case = Callable[[int], tuple[int, int]]  # protocol -> (lines, messages)


def seed(db: Database, lines: int) -> int:
    env = {"hosts": ["127.0.0.1:1"], "webroot": "/srv/www/b", "releases": "/srv/releases/b"}
    config = {
        "project": "bench",
        "repo": "ssh://git@127.0.0.1/none.git",
        "environments": {"staging": env},
    }
    project, _ = projects.apply_project(db, SYSTEM, parse_project(config))
    with db.transaction() as s:
        deploy = Deploy(
            project_id=project.id,
            env="staging",
            kind="deploy",
            ref="v1",
            config={},
            stages=[],
            variables={},
            status="success",
        )
        s.add(deploy)
        s.flush()
        deploy_id = int(deploy.id)
    now = datetime.now(UTC)
    for start in range(0, lines, 20_000):
        batch = [
            LogRecord(
                host=f"10.0.0.{i % 20 + 1}:22",
                stage="build",
                text=f"line {i}: " + "x" * 30,
                ts=now,
                stream="stdout",
            )
            for i in range(start, min(lines, start + 20_000))
        ]
        write_batch(db, deploy_id, batch, [], {}, None, None)
    return deploy_id


def count(message: dict[str, Any], got: list[int]) -> bool:
    """Count a message's lines into ``got``; True at the end."""
    if message["type"] == "line":
        got[0] += 1
    elif message["type"] == "lines":
        got[0] += len(message["lines"])
    got[1] += 1
    return bool(message["type"] == "end")


def test_client_case(client: TestClient, deploy_id: int, headers: dict[str, str]) -> Case:
    def run(protocol: int) -> tuple[int, int]:
        got = [0, 0]
        url = f"/api/v1/deploys/{deploy_id}/stream?protocol={protocol}"
        with client.websocket_connect(url, headers=dict(headers)) as ws:  # it adds to them
            while not count(ws.receive_json(), got):
                pass
        return got[0], got[1]

    return run


def server_case(port: int, deploy_id: int, headers: dict[str, str]) -> Case:
    def run(protocol: int) -> tuple[int, int]:
        got = [0, 0]

        async def follow() -> None:
            url = f"ws://127.0.0.1:{port}/api/v1/deploys/{deploy_id}/stream?protocol={protocol}"
            async with websockets.connect(
                url, additional_headers=dict(headers), max_size=2**22
            ) as ws:
                async for raw in ws:
                    if count(json.loads(raw), got):
                        return

        try:
            asyncio.run(follow())
        except websockets.exceptions.InvalidStatus as exc:
            raise RuntimeError(f"{exc}: {exc.response.headers} {exc.response.body!r}") from None
        return got[0], got[1]

    return run


def floor_case(db: Database, deploy_id: int) -> Case:
    def run(_protocol: int) -> tuple[int, int]:
        cursor, total, reads = 0, 0, 0
        while True:
            deploy_views.get(db, deploy_id)
            lines = deploy_views.logs_after(db, deploy_id, cursor, PAGE)
            reads += 1
            total += len(lines)
            if len(lines) < PAGE:
                return total, reads
            cursor = lines[-1]["id"]

    return run


def server_cpu(pid: int | None) -> float:
    """CPU seconds the server process has used (user + system), 0 without one."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(case: Case, protocol: int, pid: int | None) -> tuple[float, float, float, int, int]:
    """Wall s, this process's CPU s, the server's CPU s, lines, messages."""
    wall, cpu, served = time.perf_counter(), time.process_time(), server_cpu(pid)
    lines, messages = case(protocol)
    return (
        time.perf_counter() - wall,
        time.process_time() - cpu,
        server_cpu(pid) - served,
        lines,
        messages,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="ferryman-replay-"))
    server: subprocess.Popen[bytes] | None = None
    try:
        env = {"FERRYMAN_HOME": str(scratch / "home")}
        if args.database_url:
            env["FERRYMAN_DATABASE_URL"] = args.database_url
        settings = load_settings(env)
        db = prepare_home(settings)
        started = time.perf_counter()
        deploy_id = seed(db, args.lines)
        print(f"seeded {args.lines} lines in {time.perf_counter() - started:.1f} s", flush=True)
        actor = users.create_user(db, "bench", "bench password", superuser=True)
        token = users.create_token(db, actor, "bench", ["read"])["token"]
        headers = {"Authorization": f"Bearer {token}"}

        port = _free_port()
        exe = shutil.which("ferryman", path=os.path.dirname(sys.executable)) or "ferryman"
        server = subprocess.Popen(
            [exe, "serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port)],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=(scratch / "server.log").open("wb"),
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    log = (scratch / "server.log").read_text()[-3000:]
                    raise RuntimeError(f"the server did not start:\n{log}") from None
                time.sleep(0.2)

        results: dict[tuple[str, int], list[tuple[float, float, float, int, int]]] = {}
        with TestClient(create_app(settings, db, embedded_worker=False)) as client:
            cases = {
                "floor: the stream's reads, nothing sent": floor_case(db, deploy_id),
                "test client": test_client_case(client, deploy_id, headers),
                "real server, the CLI's client": server_case(port, deploy_id, headers),
            }
            for round_ in range(args.rounds):
                for name, case in cases.items():
                    order = (1, 2) if round_ % 2 == 0 else (2, 1)
                    for protocol in (0,) if name.startswith("floor") else order:
                        pid = server.pid if name.startswith("real") else None
                        figures = measure(case, protocol, pid)
                        assert figures[3] == args.lines, (name, protocol, figures)
                        results.setdefault((name, protocol), []).append(figures)
                        print(f"  {name} p{protocol}: {figures[0]:.2f} s", flush=True)
        floor = statistics.median(r[0] for r in results[(next(iter(cases)), 0)])
        print()
        print(
            f"{args.lines:,} lines, {args.rounds} rounds, {platform.node()}, "
            f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {db.url.split(':')[0]}"
        )
        floor_cpu = statistics.median(r[1] for r in results[(next(iter(cases)), 0)])
        print(
            "| case | protocol | messages | wall s | × floor | CPU s (client + server) | × floor |"
        )
        print("|---|---|---:|---:|---:|---:|---:|")
        for (name, protocol), runs in results.items():
            wall = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] + r[2] for r in runs)
            split = statistics.median(r[1] for r in runs), statistics.median(r[2] for r in runs)
            label = {0: "-", 1: "1 (a message a line)", 2: "2 (pages)"}[protocol]
            shown = f"{cpu:.2f}" + (f" ({split[0]:.2f} + {split[1]:.2f})" if split[1] else "")
            print(
                f"| {name} | {label} | {runs[0][4]:,} | {wall:.2f} | {wall / floor:.1f} | "
                f"{shown} | {cpu / floor_cpu:.1f} |"
            )
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
