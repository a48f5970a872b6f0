"""The database at scale: every page and list endpoint with 100,000 deploys and 10 million log
lines, and the database's size per deploy.

    .venv/bin/python benchmarks/db_scale.py [--deploys 100000] [--lines 10000000]
        [--backend sqlite|postgresql|mariadb] [--rounds 5] [--keep] [--reuse URL --home DIR]
        [--stats-versus REV] [--only-stats]

Seeding goes around the services on purpose (bulk inserts, COPY on PostgreSQL: minutes, not
hours): 20 projects with a staging and a production environment each, ``--deploys`` finished
deploys over a year (3 hosts each, with their host rows, releases, 5 command records, an audit
row, a ticket for every fifth), ``--lines`` log lines spread over them, of which one deploy
holds 100,000 (the console's worst case). Then every page (a signed-in master, the ASGI app in
this process, no network) and every list endpoint (an API token) is requested ``--rounds``
times after one warm-up request, and the median and worst are printed; the target is 200 ms.
The size of the database (and of its biggest tables) is printed per deploy.

``--keep`` leaves the database (and prints its URL and home) so that ``--reuse URL --home DIR``
can time it again after a change without seeding again. Databases on the shared servers are
named ``ferryman_bench_scale_*``; drop them when done (``--drop URL``).

``--stats-versus REV`` then times ``/stats`` and the dashboard with ``services/stats.py`` as it
was at the git revision ``REV`` and as it is now, alternating request by request on the same
database in the same process, checks that both give the same answer, and times the service
call alone (no HTTP, no JSON) the same way. ``--only-stats`` skips the other pages.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import types
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url

from ferryman.app import create_app
from ferryman.bootstrap import prepare_home
from ferryman.config.project import parse_project
from ferryman.config.retention import parse_retention
from ferryman.config.settings import load_settings
from ferryman.db.models import (
    AuditEntry,
    Deploy,
    DeployHost,
    DeployStep,
    HostState,
    LogLine,
    Project,
    Release,
    Ticket,
    User,
    utcnow,
)
from ferryman.db.session import Database
from ferryman.services import projects, retention, spaces, stats, users
from ferryman.services.audit import SYSTEM, Actor
from ferryman.testing import databases

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery"
HOSTS = ["127.0.150.1", "127.0.150.2", "127.0.150.3"]  # loopback: never contacted
PROJECTS = 20
ENVS = ("staging", "production")
BIG = 100_000  # lines of the biggest deploy
CHUNK = 20_000
STAGES = ("prepare", "checkout", "post_deploy", "transfer", "switch", "cleanup")
WORDS = (
    "unpacking",
    "linking shared path",
    "running post_release",
    "copied",
    "checking health of",
    "switched webroot to",
    "composer install: Installing dependencies from lock file",
    "npm run build: compiled successfully in 4.2s",
)


def create_database(backend: str, scratch: Path) -> str:
    """A new database of this benchmark's own name on the shared servers (or a SQLite file)."""
    if backend == "sqlite":
        return f"sqlite:///{scratch / 'ferryman.db'}"
    name = f"ferryman_bench_scale_{uuid.uuid4().hex[:8]}"
    admin = create_engine(
        databases.SERVERS[backend], isolation_level="AUTOCOMMIT", connect_args=databases.CONNECT
    )
    with admin.connect() as conn:
        charset = " CHARACTER SET utf8mb4" if backend == "mariadb" else ""
        conn.execute(text(f"CREATE DATABASE {name}{charset}"))
    admin.dispose()
    url = make_url(databases.SERVERS[backend]).set(database=name)
    if backend == "mariadb":
        url = url.update_query_dict({"charset": "utf8mb4"})
    return url.render_as_string(hide_password=False)


def chunks(rows: Iterator[dict[str, Any]], size: int = CHUNK) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def seed(db: Database, deploys: int, lines: int) -> dict[str, Any]:
    """Fill the database; returns the ids the pages are timed with."""
    rng = random.Random(22)
    for i in range(PROJECTS):
        name = f"app{i}"
        config = {
            "project": name,
            "repo": "ssh://git@127.0.0.1/team/app.git",
            "environments": {
                env: {
                    "hosts": HOSTS,
                    "webroot": f"/srv/www/{name}-{env}",
                    "releases": f"/srv/r/{name}-{env}",
                }
                for env in ENVS
            },
        }
        projects.apply_project(db, SYSTEM, parse_project(config))
    with db.read() as s:
        ids = list(s.scalars(select(Project.id).order_by(Project.id)))
        first = int(s.scalar(select(func.coalesce(func.max(Deploy.id), 0))) or 0) + 1
    now = utcnow()
    span = 365 * 24 * 3600
    # the deploys, oldest first (ids grow with time, as they do)
    starts = sorted(now - timedelta(seconds=rng.randint(600, span)) for _ in range(deploys))
    plan: list[tuple[int, int, str, datetime, str, str]] = []
    for n, started in enumerate(starts):
        status = rng.choices(("success", "failed", "cancelled"), (90, 8, 2))[0]
        kind = rng.choices(("deploy", "rollback"), (12, 1))[0]
        plan.append((first + n, rng.choice(ids), rng.choice(ENVS), started, status, kind))
    big = plan[-10][0]  # a recent deploy holds 100,000 lines
    rest = max(0, lines - BIG)
    per = rest // max(1, deploys - 1)
    extra = rest - per * (deploys - 1)
    started_at = time.perf_counter()
    engine = db.engine
    stages = [
        {
            "name": st,
            "status": "success",
            "total": 3,
            "done": 3,
            "failed": 0,
            "duration": 0.5,
            "hosts": {},
        }
        for st in STAGES
    ]

    def deploy_rows() -> Iterator[dict[str, Any]]:
        for did, pid, env, started, status, kind in plan:
            yield {
                "id": did,
                "project_id": pid,
                "env": env,
                "kind": kind,
                "ref": f"v{did}",
                "commit": f"{did:040x}",
                "release_name": f"{started:%Y%m%d-%H%M%S}_v{did}_{did:07x}",
                "status": status,
                "requested_by_name": "dev",
                "config": {},
                "variables": {},
                "secret_names": [],
                "stages": stages,
                "worker": "bench:1:abcdef",
                "created_at": started,
                "started_at": started,
                "finished_at": started + timedelta(seconds=rng.uniform(5, 90)),
                "ticket_id": did if did % 5 == 0 else None,
            }

    with engine.begin() as conn:
        for batch in chunks(deploy_rows()):
            conn.execute(insert(Deploy), batch)
        for batch in chunks(
            {
                "id": did,
                "space_id": 1,
                "project_id": pid,
                "env": env,
                "kind": kind,
                "ref": f"v{did}",
                "commit": f"{did:040x}",
                "title": f"release v{did}",
                "status": "succeeded" if status == "success" else "failed",
                "deploy_id": did,
                "created_by_name": "dev",
                "created_at": started,
                "updated_at": started,
            }
            for did, pid, env, started, status, kind in plan
            if did % 5 == 0
        ):
            conn.execute(insert(Ticket), batch)
        for batch in chunks(
            {"deploy_id": did, "host": host, "status": status}
            for did, _p, _e, _s, status, _k in plan
            for host in HOSTS
        ):
            conn.execute(insert(DeployHost), batch)
        for batch in chunks(
            {
                "project_id": pid,
                "env": env,
                "host": host,
                "name": f"{started:%Y%m%d-%H%M%S}_v{did}_{did:07x}",
                "deploy_id": did,
                "commit": f"{did:040x}",
                "state": "removed" if did < plan[-200][0] else "complete",
                "created_at": started,
            }
            for did, pid, env, started, _st, _k in plan
            for host in HOSTS
        ):
            conn.execute(insert(Release), batch)
        for batch in chunks(
            {
                "deploy_id": did,
                "host": host,
                "stage": "release",
                "command": f"tar -xzf - -C /srv/r/app/{did} && ln -sfn /srv/r/app/{did} /srv/www",
                "exit_status": 0,
                "output": "",
                "started_at": started,
                "duration": 0.2,
            }
            for did, _p, _e, started, _st, _k in plan
            for host in (*HOSTS, "", "")
        ):
            conn.execute(insert(DeployStep), batch)
        for batch in chunks(
            {
                "ts": started,
                "actor": "dev",
                "action": f"{kind}.{status}",
                "target": f"deploy:{did}",
                "space_id": 1,
                "project_id": pid,
                "ip": "127.0.0.1",
                "detail": {"env": env},
            }
            for did, pid, env, started, status, kind in plan
        ):
            conn.execute(insert(AuditEntry), batch)
        latest: dict[tuple[int, str], tuple[int, str]] = {}
        for did, pid, env, started, _st, _k in plan:
            latest[(pid, env)] = (did, f"{started:%Y%m%d-%H%M%S}_v{did}_{did:07x}")
        conn.execute(
            insert(HostState),
            [
                {
                    "project_id": pid,
                    "env": env,
                    "host": host,
                    "current_release": name,
                    "deploy_id": did,
                }
                for (pid, env), (did, name) in latest.items()
                for host in HOSTS
            ],
        )
    print(f"seeded {deploys} deploys and their rows in {time.perf_counter() - started_at:.0f} s")
    started_at = time.perf_counter()

    def line_rows() -> Iterator[tuple[int, datetime, str, str, str, str]]:
        for k, (did, _p, _e, started, _st, _k) in enumerate(plan):
            count = BIG if did == big else per + (1 if k < extra else 0)
            for i in range(count):
                host = HOSTS[i % 3] if i % 4 else ""
                yield (
                    did,
                    started + timedelta(milliseconds=i * 7),
                    host,
                    STAGES[min(i * len(STAGES) // max(count, 1), len(STAGES) - 1)],
                    "stdout" if host else "",
                    f"{WORDS[i % len(WORDS)]} {i} of release v{did}",
                )

    written = copy_lines(db, line_rows())
    print(f"seeded {written} log lines in {time.perf_counter() - started_at:.0f} s")
    ticket = max(did for did, *_ in plan if did % 5 == 0)
    return {"big": big, "project": "app0", "ticket": ticket}


def copy_lines(db: Database, rows: Iterator[tuple[int, datetime, str, str, str, str]]) -> int:
    """Log lines in bulk: COPY on PostgreSQL, executemany elsewhere."""
    count = 0
    if db.engine.dialect.name == "postgresql":
        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            with cursor.copy(
                "COPY log_lines (deploy_id, ts, host, stage, stream, text) FROM STDIN"
            ) as copy:
                for did, ts, host, stage, stream, line in rows:
                    copy.write_row((did, ts.replace(tzinfo=None), host, stage, stream, line))
                    count += 1
            raw.commit()
        finally:
            raw.close()
        return count
    mark = "?" if db.engine.dialect.name == "sqlite" else "%s"
    sql = (
        "INSERT INTO log_lines (deploy_id, ts, host, stage, stream, text) "
        f"VALUES ({', '.join([mark] * 6)})"
    )
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        batch: list[tuple[Any, ...]] = []
        for did, ts, host, stage, stream, line in rows:
            # the text form SQLAlchemy stores on SQLite (naive UTC)
            batch.append(
                (did, f"{ts.replace(tzinfo=None):%Y-%m-%d %H:%M:%S.%f}", host, stage, stream, line)
            )
            if len(batch) >= CHUNK:
                cursor.executemany(sql, batch)
                count += len(batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)
            count += len(batch)
        raw.commit()
    finally:
        raw.close()
    return count


def sizes(db: Database, url: str) -> tuple[int, list[tuple[str, int]]]:
    """The database's bytes, and the biggest tables' (with their indexes)."""
    dialect = db.engine.dialect.name
    with db.engine.connect() as conn:
        if dialect == "sqlite":
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            total = Path(make_url(url).database or "").stat().st_size
            try:
                rows = conn.exec_driver_sql(
                    "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 12"
                ).all()
            except Exception:
                rows = []
        elif dialect == "postgresql":
            total = int(
                conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar() or 0
            )
            rows = conn.exec_driver_sql(
                "SELECT relname, pg_total_relation_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 2 DESC LIMIT 8"
            ).all()
        else:
            rows = conn.exec_driver_sql(
                "SELECT table_name, data_length + index_length FROM information_schema.tables "
                "WHERE table_schema = DATABASE() ORDER BY 2 DESC LIMIT 8"
            ).all()
            total = sum(int(r[1]) for r in rows)
    return total, [(str(r[0]), int(r[1])) for r in rows]


def timed(
    client: TestClient, path: str, rounds: int, headers: dict[str, str]
) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds of each request (CPU: this process's, the server's thread
    included; unlike wall time it hardly moves with the load of a shared machine)."""
    response = client.get(path, headers=headers)  # warm-up: templates, caches, plans
    assert response.status_code == 200, (path, response.status_code, response.text[:300])
    times, cpu = [], []
    for _ in range(rounds):
        start, used = time.perf_counter(), time.process_time()
        response = client.get(path, headers=headers)
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - used) * 1000)
        assert response.status_code == 200, (path, response.text[:300])
    return times, cpu


def replay(client: TestClient, deploy_id: int, headers: dict[str, str]) -> tuple[float, float, int]:
    """The console's replay of the whole log over the WebSocket: ms to the first line, ms to
    the end message, lines received."""
    start = time.perf_counter()
    first = 0.0
    count = 0
    with client.websocket_connect(f"/api/v1/deploys/{deploy_id}/stream", headers=headers) as ws:
        while True:
            message = ws.receive_json()
            if message["type"] == "line":
                count += 1
                if count == 1:
                    first = (time.perf_counter() - start) * 1000
            elif message["type"] == "end":
                break
    return first, (time.perf_counter() - start) * 1000, count


def run_pages(
    settings: Any, db: Database, ids: dict[str, Any], rounds: int, replays: bool = True
) -> None:
    client = TestClient(create_app(settings, db, embedded_worker=False))
    assert client.post("/login", data={"username": "lead", "password": PASSWORD}).status_code in (
        200,
        303,
    )
    token = client.post("/api/v1/auth/login", json={"username": "lead", "password": PASSWORD})
    api = {"Authorization": f"Bearer {token.json()['token']}"}
    with db.read() as s:
        newest = int(s.scalar(select(func.max(Deploy.id))) or 0)
        middle = int(
            s.scalar(
                select(LogLine.id)
                .where(LogLine.deploy_id == ids["big"])
                .order_by(LogLine.id)
                .offset(BIG // 2)
                .limit(1)
            )
            or 0
        )
    big, project, ticket = ids["big"], ids["project"], ids["ticket"]
    web = "/s/default"
    pages = {
        "web: dashboard": f"{web}/",
        "web: projects": f"{web}/projects",
        "web: project": f"{web}/projects/{project}",
        "web: releases": f"{web}/projects/{project}/releases?env=production",
        "web: tickets": f"{web}/tickets",
        "web: ticket": f"{web}/tickets/{ticket}",
        "web: deploys": f"{web}/deploys",
        "web: deploys, page 100": f"{web}/deploys?before={max(1, newest - 5000)}",
        "web: deploys of a project": f"{web}/deploys?project={project}",
        "web: console (100k lines)": f"{web}/deploys/{big}",
        "web: audit": f"{web}/audit",
        "web: servers": f"{web}/servers",
        "web: members": f"{web}/members",
        "api: deploys": "/api/v1/deploys",
        "api: deploys, page 100": f"/api/v1/deploys?before={max(1, newest - 5000)}",
        "api: deploys of a project": f"/api/v1/deploys?project={project}",
        "api: deploys, failed": "/api/v1/deploys?status=failed",
        "api: deploy": f"/api/v1/deploys/{big}",
        "api: deploy steps": f"/api/v1/deploys/{big}/steps",
        "api: log, first page": f"/api/v1/deploys/{big}/log",
        "api: log, middle page": f"/api/v1/deploys/{big}/log?after={middle}",
        "api: tickets": "/api/v1/tickets",
        "api: ticket": f"/api/v1/tickets/{ticket}",
        "api: audit": "/api/v1/audit",
        "api: stats": "/api/v1/stats",
        "api: projects": "/api/v1/projects",
        "api: releases": f"/api/v1/projects/{project}/envs/production/releases",
        "api: servers": "/api/v1/servers",
    }
    print(f"{'page / endpoint':<28} {'median ms':>10} {'worst ms':>9} {'CPU ms':>7}")
    slow = []
    for name, path in pages.items():
        headers = api if name.startswith("api") else {}
        times, cpu = timed(client, path, rounds, headers)
        median = statistics.median(times)
        print(
            f"{name:<28} {median:>10.1f} {max(times):>9.1f} {statistics.median(cpu):>7.1f}",
            flush=True,
        )
        if median >= 200:
            slow.append(name)
    if replays:
        first, whole, count = replay(client, big, api)
        print(
            f"console replay over the WebSocket: first line {first:.0f} ms, "
            f"all {count} lines {whole:.0f} ms"
        )
    print("over 200 ms (median):", ", ".join(slow) or "none")
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def stats_at(revision: str) -> Callable[..., dict[str, Any]]:
    """``deploy_stats`` of ``services/stats.py`` as it was at a git revision."""
    source = subprocess.run(
        ["git", "show", f"{revision}:src/ferryman/services/stats.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType(f"stats_at_{revision}")
    sys.modules[module.__name__] = module
    exec(compile(source, f"stats.py@{revision}", "exec"), module.__dict__)
    found: Callable[..., dict[str, Any]] = module.deploy_stats
    return found


def stats_versus(settings: Any, db: Database, revision: str, rounds: int) -> None:
    """``/stats`` and the dashboard, and the service call alone, with the stats code of
    ``revision`` ("before") and of the working tree ("after"), alternating."""
    client = TestClient(create_app(settings, db, embedded_worker=False))
    assert client.post("/login", data={"username": "lead", "password": PASSWORD}).status_code in (
        200,
        303,
    )
    token = client.post("/api/v1/auth/login", json={"username": "lead", "password": PASSWORD})
    api = {"Authorization": f"Bearer {token.json()['token']}"}
    now = stats.deploy_stats
    versions = {"before": stats_at(revision), "after": now}
    with db.read() as s:
        lead = s.scalar(select(User).where(User.username == "lead"))
        assert lead is not None
        actor = Actor(id=lead.id, username="lead")
    cases: dict[str, Callable[[], Any]] = {
        "api: stats (30 days)": lambda: client.get("/api/v1/stats", headers=api),
        "api: stats, per week": lambda: client.get("/api/v1/stats?period=week", headers=api),
        "web: dashboard": lambda: client.get("/s/default/"),
        "service call (30 days)": lambda: stats.deploy_stats(db, actor),
    }
    until = utcnow().replace(tzinfo=None)
    since = (until - timedelta(days=30)).isoformat()
    answers = {}
    for name, version in versions.items():  # warm-up, and the same answer from both
        stats.deploy_stats = version
        for case in cases.values():
            case()
        answers[name] = client.get(f"/api/v1/stats?since={since}&until={until}", headers=api)
    assert answers["before"].json() == answers["after"].json(), "before and after differ"
    size = len(answers["after"].content)
    series = len(answers["after"].json()["series"])
    wall: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    try:
        for _ in range(rounds):
            for case_name, case in cases.items():
                for name, version in versions.items():
                    stats.deploy_stats = version
                    start, used = time.perf_counter(), time.process_time()
                    result = case()
                    wall.setdefault((case_name, name), []).append(
                        (time.perf_counter() - start) * 1000
                    )
                    cpu.setdefault((case_name, name), []).append(
                        (time.process_time() - used) * 1000
                    )
                    assert getattr(result, "status_code", 200) == 200
    finally:
        stats.deploy_stats = now
    print(
        f"/stats before ({revision}) and after, alternating, {rounds} rounds "
        f"(same answer: {series} series, {size / 1000:.0f} KB)"
    )
    print(f"{'':<24} {'before ms (CPU)':>18} {'after ms (CPU)':>18} {'CPU ratio':>9}")
    for case_name in cases:
        cells = []
        for name in versions:
            cells.append(
                f"{statistics.median(wall[(case_name, name)]):.0f} "
                f"({statistics.median(cpu[(case_name, name)]):.0f})"
            )
        ratio = statistics.median(cpu[(case_name, "after")]) / max(
            statistics.median(cpu[(case_name, "before")]), 1e-9
        )
        print(f"{case_name:<24} {cells[0]:>18} {cells[1]:>18} {ratio:>8.2f}x")
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def prune(db: Database, url: str, keep: timedelta) -> None:
    """The retention job's log pruning, timed, with the longest batch and the size after."""
    longest = 0.0
    last = time.perf_counter()

    def stopping() -> bool:  # called between batches: the longest gap is one batch's time
        nonlocal longest, last
        now = time.perf_counter()
        longest = max(longest, now - last)
        last = now
        return False

    start = time.perf_counter()
    done = retention.prune_logs(db, keep, stopping=stopping)
    took = time.perf_counter() - start
    print(
        f"retention {keep.days} days: {done.deploys} deploys, {done.lines} log lines and "
        f"{done.steps} command records pruned in {took:.0f} s "
        f"({done.lines / max(took, 1e-9):.0f} lines/s; longest step {longest * 1000:.0f} ms)"
    )
    total, _tables = sizes(db, url)
    print(f"database after pruning (before any VACUUM): {total / 1e6:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deploys", type=int, default=100_000)
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backend", default="sqlite", choices=databases.BACKENDS)
    parser.add_argument("--keep", action="store_true", help="leave the database")
    parser.add_argument("--reuse", help="time this seeded database again (with --home)")
    parser.add_argument("--home", help="the FERRYMAN_HOME of --reuse")
    parser.add_argument("--drop", help="drop this database and exit")
    parser.add_argument(
        "--prune",
        metavar="RETENTION",
        help="after timing: run the retention job (e.g. 180d), report it, and time again",
    )
    parser.add_argument(
        "--stats-versus",
        metavar="REV",
        help="time /stats with services/stats.py of this git revision against the current one",
    )
    parser.add_argument("--only-stats", action="store_true", help="skip the other pages")
    args = parser.parse_args()
    if args.drop:
        databases.drop(args.drop)
        return
    base = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="ferryman-db-scale-"))
    url = args.reuse or create_database(args.backend, base)
    env = {"FERRYMAN_HOME": str(base / "home"), "FERRYMAN_DATABASE_URL": url}
    settings = load_settings(env)
    db = prepare_home(settings)  # migrates (a reused database: to any newer head)
    try:
        if args.reuse:
            ids = {
                k: int(v) if v.isdigit() else v
                for k, v in (part.split("=") for part in (base / "ids").read_text().split())
            }
        else:
            users.create_user(db, "lead", PASSWORD)
            spaces.set_member(db, SYSTEM, "default", "lead", "master")
            ids = seed(db, args.deploys, args.lines)
            (base / "ids").write_text(" ".join(f"{k}={v}" for k, v in ids.items()))
            if db.engine.dialect.name == "postgresql":
                with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                    c.exec_driver_sql("VACUUM ANALYZE")
            elif db.engine.dialect.name in ("mysql", "mariadb"):
                # InnoDB recomputes a table's statistics in the background once a tenth of it
                # changed; right after a bulk load they can still describe the empty table
                # (the failed-deploys list: 917 ms before, 62 ms after, at 20,000 deploys)
                with db.engine.connect() as c:
                    names = c.exec_driver_sql("SHOW TABLES").scalars().all()
                    c.exec_driver_sql(f"ANALYZE TABLE {', '.join(names)}").all()
            # SQLite: no ANALYZE, as a server never runs one (its planner has no statistics)
        with db.read() as s:
            deploys = int(s.scalar(select(func.count()).select_from(Deploy)) or 0)
            lines = int(s.scalar(select(func.count()).select_from(LogLine)) or 0)
        total, tables = sizes(db, url)
        print(
            f"backend {db.engine.dialect.name}: {deploys} deploys, {lines} log lines; "
            f"database {total / 1e6:.0f} MB, {total / max(deploys, 1) / 1024:.1f} KiB per deploy"
        )
        for name, size in tables:
            print(f"  {name:<32} {size / 1e6:>9.1f} MB {size / max(deploys, 1):>9.0f} B/deploy")
        if not args.only_stats:
            run_pages(settings, db, ids, args.rounds)
        if args.stats_versus:
            stats_versus(settings, db, args.stats_versus, args.rounds)
        keep = parse_retention(args.prune) if args.prune else None
        if keep is not None:
            prune(db, url, keep)
            run_pages(settings, db, ids, args.rounds, replays=False)
    finally:
        db.dispose()
        if args.keep or args.reuse:
            print(f"kept: --reuse '{url}' --home {base}")
        elif url:
            databases.drop(url)


if __name__ == "__main__":
    main()
