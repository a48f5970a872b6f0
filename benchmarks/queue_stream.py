"""Job queue and live console benchmark, on real databases.

    .venv/bin/python benchmarks/queue_stream.py [--jobs 2000] [--workers 2]
        [--backends postgresql,mariadb,sqlite]

1. Claim throughput: ``--jobs`` jobs queued, ``--workers`` processes claiming (the real
   ``claim_next``, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL and MariaDB) and finishing them as
   fast as they can; jobs per second, and a check that each ran exactly once.
2. Stream latency (PostgreSQL): a deploy's recorder writes 50 lines/s for 20 s the way a worker
   does (batched every 0.3 s); a viewer follows it through a real ``ferryman serve`` WebSocket
   on another process. Latency = arrival at the viewer − the time the line was printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import websockets
from sqlalchemy import func, select

from ferryman.config.project import parse_project
from ferryman.db.models import Deploy
from ferryman.db.session import Database
from ferryman.pipeline.recorder import Recorder
from ferryman.services import deploys, projects, queue, users
from ferryman.services.audit import SYSTEM
from ferryman.services.stats import percentile
from ferryman.testing import databases


def _setup(url: str, jobs: int) -> int:
    db = Database(url)
    db.upgrade()
    env = {"hosts": ["127.0.0.1:1"], "webroot": "/srv/www/b", "releases": "/srv/releases/b"}
    config = {"project": "bench", "repo": "file:///none", "environments": {"staging": env}}
    project, _ = projects.apply_project(db, SYSTEM, parse_project(config))
    with db.transaction() as s:
        s.add_all(
            Deploy(
                project_id=project.id,
                env="staging",
                kind="deploy",
                ref="v1",
                config={},
                stages=[],
                variables={},
            )
            for _ in range(jobs)
        )
    db.dispose()
    return project.id


def _claimer(url: str, name: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    db = Database(url)
    ran = []
    while True:
        deploy_id = queue.claim_next(db, name)
        if deploy_id is None:
            break
        deploys.finish(db, deploy_id, "success", None)
        ran.append(deploy_id)
    db.dispose()
    out.put(ran)


def claim_throughput(backend: str, jobs: int, workers: int, scratch: Path) -> dict[str, float]:
    url = databases.create(backend, scratch)
    try:
        _setup(url, jobs)
        out: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
        procs = [
            multiprocessing.Process(target=_claimer, args=(url, f"w{i}", out))
            for i in range(workers)
        ]
        start = time.perf_counter()
        for p in procs:
            p.start()
        ran = [job for _ in procs for job in out.get()]
        for p in procs:
            p.join()
        wall = time.perf_counter() - start
        assert len(ran) == len(set(ran)) == jobs, (len(ran), len(set(ran)))
        db = Database(url)
        with db.read() as s:
            done = s.scalar(
                select(func.count()).select_from(Deploy).where(Deploy.status == "success")
            )
        db.dispose()
        assert done == jobs
        return {"jobs": jobs, "workers": workers, "seconds": wall, "per_second": jobs / wall}
    finally:
        databases.drop(url)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stream_latency(scratch: Path, seconds: float = 20, rate: float = 50) -> dict[str, float]:
    url = databases.create("postgresql", scratch)
    home = scratch / "home"
    port = _free_port()
    exe = shutil.which("ferryman", path=os.path.dirname(sys.executable)) or "ferryman"
    env = {**os.environ, "FERRYMAN_HOME": str(home), "FERRYMAN_DATABASE_URL": url}
    server = None
    try:
        project_id = _setup(url, 0)
        db = Database(url)
        actor = users.create_user(db, "bench", "bench password", superuser=True)
        token = users.create_token(db, actor, "bench", ["read"])["token"]
        with db.transaction() as s:
            deploy = Deploy(
                project_id=project_id,
                env="staging",
                kind="deploy",
                ref="v1",
                config={},
                stages=[],
                variables={},
                status="running",
            )
            s.add(deploy)
            s.flush()
            deploy_id = deploy.id
        server = subprocess.Popen(
            [exe, "serve", "--no-worker", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        latencies: list[float] = []

        async def viewer() -> None:
            ws_url = f"ws://127.0.0.1:{port}/api/v1/deploys/{deploy_id}/stream"
            headers = {"Authorization": f"Bearer {token}"}
            async with websockets.connect(ws_url, additional_headers=headers) as ws:
                async for raw in ws:
                    arrived = time.time()
                    message = json.loads(raw)
                    if message["type"] == "line":
                        printed = datetime.fromisoformat(message["ts"]).timestamp()
                        latencies.append(arrived - printed)
                    elif message["type"] == "end":
                        return

        async def writer() -> None:
            recorder = Recorder(db, deploy_id)
            flusher = asyncio.create_task(recorder.run_flusher())
            for i in range(int(seconds * rate)):
                recorder.log(f"line {i}", host="h1", stage="post_deploy", stream="stdout")
                await asyncio.sleep(1 / rate)
            flusher.cancel()
            await recorder.flush()
            await asyncio.to_thread(deploys.finish, db, deploy_id, "success", None)

        async def both() -> None:
            watching = asyncio.create_task(viewer())
            await asyncio.sleep(1)
            await writer()
            await asyncio.wait_for(watching, 30)

        asyncio.run(both())
        db.dispose()
        return {
            "lines": len(latencies),
            "p50": percentile(latencies, 0.5) or 0.0,
            "p99": percentile(latencies, 0.99) or 0.0,
            "max": max(latencies),
        }
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        databases.drop(url)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backends", default="postgresql,mariadb,sqlite")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="ferryman-qbench-"))
    try:
        print("\n| backend | jobs | workers | seconds | jobs/s |\n|---|---:|---:|---:|---:|")
        for backend in args.backends.split(","):
            reason = databases.unavailable(backend)
            if reason:
                print(f"| {backend} | skipped: {reason} | | | |")
                continue
            r = claim_throughput(backend, args.jobs, args.workers, scratch)
            print(
                f"| {backend} | {r['jobs']} | {r['workers']} | {r['seconds']:.2f} "
                f"| {r['per_second']:.0f} |"
            )
        if not databases.unavailable("postgresql"):
            lat = stream_latency(scratch)
            print(
                f"\nstream latency on PostgreSQL ({lat['lines']} lines at 50/s through a "
                f"separate server process): p50 {lat['p50'] * 1000:.0f} ms, "
                f"p99 {lat['p99'] * 1000:.0f} ms, max {lat['max'] * 1000:.0f} ms"
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
