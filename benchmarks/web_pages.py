"""Web UI page benchmark: server time of every page with 1,000 deploys in the database.

    .venv/bin/python benchmarks/web_pages.py [--deploys 1000] [--rounds 20]
        [--backend sqlite|postgresql|mariadb]

A database is filled the way Ferryman fills it — 10 projects with 3 hosts each, ``--deploys``
finished deploys over 30 days (each with its hosts, 40 log lines, stages, releases), tickets
for a fifth of them, audit rows — then every page is requested ``--rounds`` times by a
signed-in master through the ASGI app in this process (no network), and the time from
request to complete response is reported (median, worst and the first request's). The
target is < 200 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi.testclient import TestClient

from ferryman.app import create_app
from ferryman.bootstrap import prepare_home
from ferryman.config.project import parse_project
from ferryman.config.settings import load_settings
from ferryman.db.models import (
    Deploy,
    DeployHost,
    HostState,
    LogLine,
    Project,
    Release,
    Ticket,
    utcnow,
)
from ferryman.limits import freeze_start_up_objects
from ferryman.services import inventory, projects, spaces, tickets, users
from ferryman.services.audit import SYSTEM, record
from ferryman.testing import databases

PASSWORD = "correct horse battery"
NET = os.environ.get("FERRYMAN_TEST_NET", "127.0.150")  # this run's loopback range
HOSTS = [f"{NET}.1", f"{NET}.2", f"{NET}.3"]  # never contacted


def git_repo(base: Path) -> tuple[str, str, str]:
    """A real repository (file://) with two tagged commits: (url, v1 commit, v2 commit)."""
    repo = base / "repo"
    repo.mkdir()
    commits = []
    for tag in ("v1", "v2"):
        (repo / "index.html").write_text(f"{tag}\n")
        for args in (
            ["init", "-q", "-b", "master"] if tag == "v1" else None,
            ["-c", "user.name=Dev", "-c", "user.email=dev@example.com", "add", "-A"],
            ["-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-qm", tag],
            ["tag", tag],
        ):
            if args:
                subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
        commits.append(
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True
            ).stdout.strip()
        )
    return f"file://{repo}", commits[0], commits[1]


def fill(db, count: int, repo_url: str, live_commit: str) -> str:
    """10 projects, ``count`` finished deploys spread over 30 days; returns the name of the
    project whose repository is real (its hosts run ``live_commit``)."""
    rng = random.Random(7)
    names = []
    for i in range(10):
        name = f"app{i}"
        config = {
            "project": name,
            "repo": repo_url if i == 0 else "ssh://git@127.0.0.1/team/app.git",
            "environments": {
                env: {
                    "hosts": HOSTS,
                    "webroot": f"/srv/www/{name}-{env}",  # no two environments on one path
                    "releases": f"/srv/r/{name}-{env}",
                }
                for env in ("staging", "production")
            },
        }
        projects.apply_project(db, SYSTEM, parse_project(config))
        names.append(name)
    now = utcnow()
    with db.transaction() as s:
        ids = {p.name: p.id for p in s.query(Project)}
        for n in range(count):
            name = rng.choice(names)
            env = rng.choice(("staging", "production"))
            started = now - timedelta(minutes=rng.randint(1, 30 * 24 * 60))
            status = rng.choices(("success", "failed"), (9, 1))[0]
            kind = rng.choices(("deploy", "rollback"), (12, 1))[0]
            release = f"{started:%Y%m%d-%H%M%S}_v{n}_{n:07x}"
            deploy = Deploy(
                project_id=ids[name],
                env=env,
                kind=kind,
                ref=f"v{n}",
                commit=f"{n:040x}",
                release_name=release,
                status=status,
                requested_by_name="dev",
                config={},
                variables={},
                secret_names=[],
                stages=[
                    {
                        "name": st,
                        "status": "success",
                        "total": 3,
                        "done": 3,
                        "failed": 0,
                        "duration": 0.5,
                        "hosts": {},
                    }
                    for st in ("prepare", "checkout", "transfer", "switch", "cleanup")
                ],
                created_at=started,
                started_at=started,
                finished_at=started + timedelta(seconds=rng.uniform(5, 90)),
            )
            s.add(deploy)
            s.flush()
            if n % 5 == 0:
                ticket = Ticket(
                    space_id=1,
                    project_id=ids[name],
                    env=env,
                    kind="deploy",
                    ref=f"v{n}",
                    commit=deploy.commit,
                    title=f"release v{n}",
                    status="succeeded",
                    deploy_id=deploy.id,
                    created_by_name="dev",
                    created_at=started,
                    updated_at=started,
                )
                s.add(ticket)
                s.flush()
                deploy.ticket_id = ticket.id
                record(
                    s,
                    SYSTEM,
                    "ticket.create",
                    f"ticket:{ticket.id}",
                    space_id=1,
                    project_id=ids[name],
                )
            for host in HOSTS:
                s.add(DeployHost(deploy_id=deploy.id, host=host, status=status))
                s.add(
                    Release(
                        project_id=ids[name],
                        env=env,
                        host=host,
                        name=release,
                        deploy_id=deploy.id,
                        commit=deploy.commit,
                        created_at=started,
                    )
                )
            s.add_all(
                LogLine(
                    deploy_id=deploy.id,
                    host=HOSTS[i % 3],
                    stage="transfer",
                    text=f"line {i}",
                    ts=started,
                )
                for i in range(40)
            )
            record(
                s,
                SYSTEM,
                f"{kind}.{status}",
                f"deploy:{deploy.id}",
                space_id=1,
                project_id=ids[name],
            )
        latest: dict[tuple[int, str], Deploy] = {}
        for deploy in s.query(Deploy).order_by(Deploy.id):
            latest[(deploy.project_id, deploy.env)] = deploy
        for (project_id, env), deploy in latest.items():
            for host in HOSTS:
                s.add(
                    HostState(
                        project_id=project_id,
                        env=env,
                        host=host,
                        current_release=deploy.release_name,
                        deploy_id=deploy.id,
                    )
                )
            if project_id == ids[names[0]]:
                for release in s.query(Release).filter_by(name=deploy.release_name):
                    release.commit = live_commit
    return names[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deploys", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--backend", default="sqlite", choices=databases.BACKENDS)
    parser.add_argument("--servers", type=int, default=0, help="more servers in the space")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="ferryman-web-bench-"))
    env = {"FERRYMAN_HOME": str(base / "home")}
    url = None
    if args.backend != "sqlite":
        url = databases.create(args.backend, base)
        env["FERRYMAN_DATABASE_URL"] = url
    settings = load_settings(env)
    db = prepare_home(settings)
    try:
        users.create_user(db, "lead", PASSWORD)
        spaces.set_member(db, SYSTEM, "default", "lead", "master")
        spaces.update_limits(db, SYSTEM, "default", allow_local_repos=True)  # app0's repo
        for n in range(args.servers):  # a big inventory (addresses on loopback, never used)
            address, port = f"{NET}.{n % 250 + 1}", 2200 + n // 250
            inventory.create_server(
                db, SYSTEM, "default", f"srv-{n}", address, port=port, labels=["bulk"]
            )
        repo_url, v1, _v2 = git_repo(base)
        project = fill(db, args.deploys, repo_url, v1)
        ticket = asyncio.run(
            tickets.create_ticket(
                db, settings, SYSTEM, f"default:{project}", "production", "v2", title="v2"
            )
        )["id"]
        with db.read() as s:
            deploy_id = s.query(Deploy.id).order_by(Deploy.id.desc()).first()[0]
        client = TestClient(create_app(settings, db, embedded_worker=False))
        freeze_start_up_objects()  # as `ferryman serve` does once its app is built
        client.post("/login", data={"username": "lead", "password": PASSWORD})
        base_url = "/s/default"
        pages = {
            "dashboard": f"{base_url}/",
            "projects": f"{base_url}/projects",
            "project": f"{base_url}/projects/{project}",
            "project form": f"{base_url}/projects/{project}/edit",
            "releases": f"{base_url}/projects/{project}/releases?env=production",
            "config files": f"{base_url}/projects/{project}/config",
            "tickets": f"{base_url}/tickets",
            "new ticket": f"{base_url}/tickets/new?project={project}&env=production",
            "ticket": f"{base_url}/tickets/{ticket}",
            "deploys": f"{base_url}/deploys",
            "console": f"{base_url}/deploys/{deploy_id}",
            "servers": f"{base_url}/servers",
            "members": f"{base_url}/members",
            "audit log": f"{base_url}/audit",
            "account": "/account",
        }
        print(f"{args.deploys} deploys, backend {args.backend}, {args.rounds} rounds per page")
        print(f"{'page':<14} {'median ms':>10} {'worst ms':>9} {'first ms':>9}")
        worst_all = 0.0
        for name, path in pages.items():
            times = []
            for _ in range(args.rounds):
                start = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - start) * 1000)
                assert response.status_code == 200, (path, response.text[:300])
            worst_all = max(worst_all, max(times))
            print(
                f"{name:<14} {statistics.median(times):>10.1f} {max(times):>9.1f}"
                f" {times[0]:>9.1f}"  # the first request: a cold cache, once compiled templates
            )
        print(f"worst of all pages: {worst_all:.1f} ms (target < 200 ms)")
    finally:
        db.dispose()
        if url:
            databases.drop(url)


if __name__ == "__main__":
    main()
