"""Soak benchmark: two servers and ``--workers`` workers on PostgreSQL, deploys without pause,
a worker or a server SIGKILLed every ``--kill-every`` seconds (in turn; a new one started on
the same slot or port), and optionally the database itself restarted once. Every deploy must
end exactly once with a truthful status, and the fleet must be whole after each.

    .venv/bin/python benchmarks/soak.py [--deploys 200] [--kill-every 30] [--hosts 6]
        [--projects 4] [--workers 3] [--lease 6] [--net 127.0.140] [--private-pg]
        [--restart-pg-at SECONDS] [--pg-down 5] [--deadline 2700] [--json FILE]
        [--evidence DIR]

What runs: a real fleet (``--hosts`` sshd hosts on NET.1.., a git host on NET.250 serving one
repository per project over SSH; NET is ``--net``, default ``FERRYMAN_SOAK_NET`` or
``FERRYMAN_TEST_NET`` or 127.0.140), a fresh PostgreSQL database (on the shared server, dropped
at the end; or with ``--private-pg`` on a private server of its own on NET.251, port P+2,
removed at the end), two ``ferryman serve --no-worker`` on 127.0.0.1:P and :P+1 (P is
``--port``, default 18000 + NET's third number: 18140 for 127.0.140) and ``--workers``
``ferryman worker`` processes on one FERRYMAN_HOME, with a short lease so take-overs happen.

The driver asks for deploys through the REST API of the two servers in turn, one deploy per
project at a time: mostly new commits, some rollbacks and config-only deploys. A commit's
``sleep.txt`` tells the projects' ``post_release`` hook how long to sleep (0-3 s), so kills
land mid-deploy. Some requests are sent to both servers at once: exactly one may be accepted
(the other is a correct 409).

Kills: every ``--kill-every`` seconds the next victim, alternating a worker (the workers in
turn) and a server (A, B in turn), is SIGKILLed and a new one started in its place at once
(a server on the same port). The driver's requests survive a dead server: the API has no
idempotency key, so a request is only ever repeated when it cannot have made a deploy — a
refused connection goes straight to the other server; after any other failure (a reset, a
timeout, a 5xx) the driver first looks in the database for a deploy of that project it does
not know, adopts it if there is one, and asks again only if there is none; a 409 naming an
unknown holder adopts that holder. At most ``RETRIES`` attempts per request; the summary
counts retries, adoptions and requests given up.

PostgreSQL restart (``--restart-pg-at S``, needs ``--private-pg``): from S seconds into the
run, once both servers answer ``/readyz`` and every worker has started (a process started after
a kill takes 10-50 s to start at this machine's load; the outage alone is to be measured), the
private server gets a fast shutdown (every connection dropped), stays down ``--pg-down``
seconds, and is started again on the same address and port; no kill lands in between. The
driver keeps asking, polling and checking throughout (its own reads fail and are counted and
tried again; a request answered 5xx during the outage is counted, not a violation, and is
asked again only once the database shows it made no deploy). Meanwhile the driver probes both
servers' ``/healthz`` and ``/readyz`` and records what they answer and whether every worker
and server process is still alive; no process is restarted because of the outage (a process
that exits by itself is a violation, and only then replaced). Afterwards: how long until the
servers answered ``/readyz`` 200 again, how long until the first deploy was started after the
restart, and every deploy that was queued or running across the outage must still end once.

Queue pick-up latency: for each deploy, ``started_at - created_at`` from its record (both
written by the servers' and workers' clocks on this one machine). It is reported over the
deploys that were queued while a worker was free, decided after the run from the records and
the driver's process log: at the deploy's ``created_at`` T, a worker counts as alive from its
first log line (it is ready to claim) until the driver killed it; the capacity is
``alive × (FERRYMAN_WORKER_CONCURRENCY - 1)`` for an ordinary deploy (the last slot of each
worker is kept for rollbacks) and ``alive × concurrency`` for a rollback; the load at T is
every other deploy started at or before T and not finished by T whose worker (the pid in
``Deploy.worker``) was alive at T, plus every other deploy created before T and not yet started
at T (it is ahead in the queue). A deploy counts as "queued while a worker was free" when
load < capacity. Deploys whose wait overlaps the PostgreSQL outage are left out and counted
on their own. p50/p95/p99/max are reported for those deploys, and for all deploys beside them.

After each deploy ends it is checked: one outcome audit row, matching its status; its
``finished_at`` (and status) never change afterwards; no host row left ``pending``/``running``;
the project lock free; no ``.tmp-`` switch link beside the webroot; and its status truthful —
``success``: every host serves its release; otherwise every host serves one and the same
release (or none, before a first success), the one the database records as live, and what they
served before the deploy (a rollback may instead have been carried forward to its target).
Every served release must be complete: every file of its manifest present with its hash, and
its ``.ferryman-release`` naming the commit whose content it holds.

Exit status 1 on any violation; the evidence (violations, the deploys' records and logs, the
processes' logs) is kept under ``--evidence`` (default: a new dir under /tmp). Needs root (the
fleet) and PostgreSQL: FERRYMAN_TEST_POSTGRES (default postgres@127.0.0.1:5432, trust), or its
binaries for ``--private-pg``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from ferryman.bootstrap import prepare_home
from ferryman.config.settings import load_settings
from ferryman.db.models import (
    ACTIVE_STATUSES,
    AuditEntry,
    Deploy,
    DeployHost,
    HostState,
    Lock,
    LogLine,
    Project,
    Space,
)
from ferryman.db.session import Database
from ferryman.domain.manifest import MANIFEST_FILE, VERSION_FILE, decode
from ferryman.services import locks, users
from ferryman.testing import databases
from ferryman.testing.fleet import Fleet, FleetHost, add_host, start_fleet
from ferryman.testing.postgres import PrivatePostgres
from ferryman.testing.postgres import unavailable as pg_unavailable
from ferryman.testing.processes import ferryman_exe

NET = os.environ.get("FERRYMAN_SOAK_NET") or os.environ.get("FERRYMAN_TEST_NET") or "127.0.140"
RETRIES = 5  # attempts per request across dead servers
READY_LAG = 3.0  # seconds a worker is taken to need before it claims, without a log line
ENV = "staging"  # a seeded environment that needs no approval
FINAL = ("success", "failed", "cancelled")
HOST_FINAL = ("success", "failed", "reverted", "unchanged", "cancelled", "skipped")
POLL = 0.3  # seconds between the driver's rounds
RECHECK = 15.0  # seconds between re-reads of every ended deploy
HOOK = 'sleep "$(cat sleep.txt 2>/dev/null || echo 0)"\n'


# --- processes ------------------------------------------------------------------------------


class Proc:
    """One ``ferryman`` child in a process group of its own (so what it started can be
    stopped by that group's id at the end, even after it was SIGKILLed)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.args, self.env, self.log = name, args, env, log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                [ferryman_exe(), *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.popen.pid
        self.started = time.monotonic()
        self.born = time.time()  # wall clock, to compare with the records' timestamps
        self.died: float | None = None  # wall clock of its SIGKILL by the driver

    def ready_at(self) -> float:
        """When it could first claim: its first log line (wall clock), else a fixed lag."""
        with contextlib.suppress(OSError, ValueError):
            for line in self.log.read_text(errors="replace").splitlines():
                if line[:4].isdigit() and "T" in line[:11]:  # 2026-11-30T09:12:01.123Z INFO …
                    stamp = datetime.fromisoformat(line.split()[0].replace("Z", "+00:00"))
                    if stamp.tzinfo is None:
                        stamp = stamp.replace(tzinfo=UTC)
                    if stamp.timestamp() >= self.born - 1:
                        return stamp.timestamp()
        return self.born + READY_LAG

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL this process only (what it started lives on, as after a real crash)."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            self.died = time.time()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(10)

    def stop(self, grace: float) -> None:
        """SIGTERM, then SIGKILL after ``grace`` s; then SIGKILL whatever is left of its group."""
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.kill()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # the group this process led


def wait_http(url: str, proc: Proc, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            httpx.get(url + "/healthz", timeout=1)
            return
        except httpx.HTTPError:
            if not proc.alive() or time.monotonic() > deadline:
                tail = proc.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{url} did not start:\n{tail}") from None
            time.sleep(0.1)


# --- repositories ---------------------------------------------------------------------------


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=60
    ).stdout


class Repo:
    """A bare repository on the git host and a working clone to commit from. Every commit's
    ``index.html`` names it, so a served release can be matched with its commit."""

    def __init__(self, git_host: FleetHost, work: Path, name: str, rng: random.Random) -> None:
        self.name, self.rng = name, rng
        bare = git_host.root / "git" / f"{name}.git"
        bare.parent.mkdir(parents=True, exist_ok=True)
        git("init", "--bare", "-q", "-b", "master", str(bare), cwd=work)
        self.work = work / name
        git("init", "-q", "-b", "master", str(self.work), cwd=work)
        git("config", "user.email", "soak@example.com", cwd=self.work)
        git("config", "user.name", "Soak", cwd=self.work)
        git("remote", "add", "origin", str(bare), cwd=self.work)
        self.url = f"ssh://root@{git_host.address}/srv/git/{name}.git"
        self.count = 0
        self.index: dict[str, str] = {}  # commit -> its index.html

    def commit(self) -> str:
        self.count += 1
        n = self.count
        index = f"{self.name} commit {n}\n"
        files = {
            "index.html": index,
            # the post_release hook sleeps this long: 1-3 s for most, 0 s for the rest
            "sleep.txt": str(self.rng.choice([0, 0, 1, 2, 3])) + "\n",
            f"assets/a{n % 8}.txt": f"asset {n % 8} of commit {n}\n" * 50,
        }
        if n == 1:
            for i in range(8):
                files[f"assets/a{i}.txt"] = f"asset {i}\n" * 50
        for rel, content in files.items():
            path = self.work / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "-m", f"commit {n}", cwd=self.work)
        git("push", "-q", "origin", "HEAD:master", cwd=self.work)
        sha = git("rev-parse", "HEAD", cwd=self.work).strip()
        self.index[sha] = index
        return sha


# --- what the driver keeps ------------------------------------------------------------------


@dataclass
class Tracked:
    """A deploy the driver asked for."""

    id: int
    project: str
    kind: str  # deploy | rollback | config
    server: str
    asked_at: float  # monotonic
    before: str | None  # what every host served when it was asked ("?": unknown)
    status: str = ""
    code: str = ""
    finished_at: datetime | None = None
    ended_at: float | None = None  # monotonic, when the driver saw it end
    seconds: float = 0.0  # created_at -> finished_at, from the record
    recovered: bool = False  # a recovery stage in its record: another worker took it over
    message: str = ""  # its error's message, when it did not succeed


@dataclass
class ProjectState:
    name: str
    repo: Repo
    config: dict[str, Any]
    live: str | None = None  # what every host served after the last check ("?": unknown)
    hosts: dict[str, str | None] = field(default_factory=dict)  # each host, at that check
    split_by: int | None = None  # the deploy that left the fleet split, while it is
    active: Tracked | None = None
    successes: int = 0
    stuck: bool = False
    unsure: bool = False  # its last request failed without knowing whether it made a deploy


@dataclass
class Figures:
    violations: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    accepted: Counter[str] = field(default_factory=Counter)  # by server
    kinds: Counter[str] = field(default_factory=Counter)
    busy_409: int = 0
    other_409: Counter[str] = field(default_factory=Counter)
    pairs: int = 0  # requests sent to both servers at once
    both_refused: int = 0
    request_errors: Counter[str] = field(default_factory=Counter)
    retries: int = 0  # requests asked again (after a refused connection or no deploy made)
    adopted: int = 0  # deploys found after a failed request, or named by a 409, and adopted
    given_up: int = 0  # requests that failed RETRIES times (the project asks again later)
    driver_db_errors: Counter[str] = field(default_factory=Counter)
    kills: list[dict[str, Any]] = field(default_factory=list)
    outage: dict[str, Any] = field(default_factory=dict)
    ended: list[Tracked] = field(default_factory=list)

    def violation(self, what: str, deploy: int | None = None, **detail: Any) -> None:
        entry = {"what": what, "deploy": deploy, **detail}
        self.violations.append(entry)
        shown = f"#{deploy} " if deploy is not None else ""
        print(f"VIOLATION {shown}{what}", file=sys.stderr, flush=True)


# --- the fleet as the hosts have it ---------------------------------------------------------


def host_address(key: str) -> str:
    """A record's host key ("127.0.140.1" or "root@127.0.140.1:22") as an address."""
    key = key.rpartition("@")[2]
    return key.rsplit(":", 1)[0] if key.count(":") == 1 else key


def served(host: FleetHost, project: str) -> str | None:
    """The release the host's webroot points to; ``None`` without a webroot; a marker for a
    real directory or a link outside the project's releases."""
    link = host.path(f"/srv/www/{project}")
    if link.is_symlink():
        target = os.readlink(link)
        if os.path.dirname(target.rstrip("/")) == f"/srv/releases/{project}":
            return os.path.basename(target.rstrip("/"))
        return f"<link to {target}>"
    if link.exists():
        return "<a real directory>"
    return None


def release_problem(host: FleetHost, project: str, name: str, index: dict[str, str]) -> str | None:
    """Why release ``name`` on ``host`` is not complete and authentic, or None."""
    root = host.path(f"/srv/releases/{project}/{name}")
    if not root.is_dir():
        return "its dir is missing"
    try:
        manifest = decode((root / MANIFEST_FILE).read_bytes())
    except (OSError, ValueError) as exc:
        return f"no readable manifest ({exc})"
    for rel, (kind, _mode, digest) in manifest.items():
        path = root / rel
        if kind == "d":
            if not path.is_dir() or path.is_symlink():
                return f"{rel}: directory missing"
        elif kind == "l":
            if not path.is_symlink() or os.readlink(path) != digest:
                return f"{rel}: symlink missing or changed"
        else:
            try:
                data = path.read_bytes()
            except OSError:
                return f"{rel}: file missing"
            if hashlib.sha1(data).hexdigest() != digest:
                return f"{rel}: content differs from the manifest"
    try:
        fields = {
            k: json.loads(v)
            for k, _, v in (
                line.partition(": ") for line in (root / VERSION_FILE).read_text().splitlines()
            )
        }
    except (OSError, ValueError) as exc:
        return f"no readable {VERSION_FILE} ({exc})"
    if fields.get("release") != name:
        return f"{VERSION_FILE} names release {fields.get('release')!r}"
    commit = str(fields.get("commit", ""))
    if commit not in index:
        return f"{VERSION_FILE} names commit {commit[:12]!r}, not one of the repository's"
    try:
        content = (root / "index.html").read_text()
    except OSError:
        return "index.html missing"
    if content != index[commit]:
        return f"index.html is not commit {commit[:12]}'s"
    return None


def leftovers(host: FleetHost, project: str) -> tuple[list[str], list[str]]:
    """(half-made switch links beside the webroot, staging copies in the releases dir)."""
    www = host.path("/srv/www")
    links = sorted(p.name for p in www.glob(f".{project}.tmp-*")) if www.exists() else []
    releases = host.path(f"/srv/releases/{project}")
    staging = sorted(p.name for p in releases.glob(".ferryman-next-*")) if releases.exists() else []
    return links, staging


# --- the benchmark --------------------------------------------------------------------------


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.figures = Figures()
        self.base = Path(tempfile.mkdtemp(prefix="ferryman-soak-"))
        self.fleet: Fleet | None = None
        self.db_name = ""
        self.db_url = ""
        self.db: Database | None = None
        self.pg: PrivatePostgres | None = None
        self.net: str = args.net
        self.port: int = args.port or 18000 + int(self.net.split(".")[2])
        self.ports = (self.port, self.port + 1)
        self.servers: list[Proc] = []
        self.every_server: list[Proc] = []
        self.outage_window: tuple[float, float] | None = None  # wall clock, stop → back
        self.pg_restarted = False
        self.pg_down_since: float | None = None  # wall clock, while the database is down
        self.pg_phase = ""  # "" → waiting → down → recovering → done
        self.pg_since = 0.0
        self.pg_next_probe = 0.0
        self.pg_probes: list[dict[str, Any]] = []
        self.pickups: dict[str, Any] = {}
        self.workers: list[Proc] = []
        self.every_worker: list[Proc] = []
        self.projects: dict[str, ProjectState] = {}
        self.tracked: dict[int, Tracked] = {}
        self.asked = 0
        self.turn = 0  # which server takes the next request
        self.pool = concurrent.futures.ThreadPoolExecutor(2)
        self.http: httpx.Client | None = None
        self.started = 0.0
        self.wall = 0.0

    # setup ------------------------------------------------------------------------------

    def setup(self) -> None:
        args = self.args
        net = self.net
        self.fleet = start_fleet(self.base / "fleet", 0, network=net)  # keys; hosts below
        for i in range(1, args.hosts + 1):
            add_host(self.fleet, f"h{i}", f"{net}.{i}")
        git_host = add_host(self.fleet, "git", f"{net}.250")
        self.hosts = [h for h in self.fleet.hosts if h.name != "git"]

        if args.private_pg:
            self.pg = PrivatePostgres(host=f"{net}.251")
            self.pg.start(self.port + 2)
            self.db_url = self.pg.create_database("ferryman_soak")
        else:
            self.db_name = f"ferryman_soak_{uuid.uuid4().hex[:12]}"
            admin = create_engine(
                databases.SERVERS["postgresql"],
                isolation_level="AUTOCOMMIT",
                connect_args=databases.CONNECT,
            )
            with admin.connect() as conn:
                conn.execute(text(f"CREATE DATABASE {self.db_name}"))
            admin.dispose()
            self.db_url = (
                make_url(databases.SERVERS["postgresql"])
                .set(database=self.db_name)
                .render_as_string(hide_password=False)
            )

        home = self.base / "home"
        (home / "ssh").mkdir(parents=True)
        shutil.copy(self.fleet.client_key, home / "ssh" / "id_ed25519")
        shutil.copy(self.fleet.known_hosts, home / "ssh" / "known_hosts")
        env = {
            **os.environ,
            "FERRYMAN_HOME": str(home),
            "FERRYMAN_DATABASE_URL": self.db_url,
            "FERRYMAN_LOCK_LEASE": str(args.lease),
            "FERRYMAN_WORKER_POLL": "0.2",
            "FERRYMAN_DRAIN_GRACE": "30",
        }
        for name in ("FERRYMAN_URL", "FERRYMAN_TOKEN", "FERRYMAN_EMBEDDED_WORKER"):
            env.pop(name, None)
        self.env = env
        self.db = prepare_home(load_settings(env))  # migrates, makes the secret key
        admin_actor = users.create_user(self.db, "soak", "correct horse battery", superuser=True)
        token = users.create_token(self.db, admin_actor, "soak", ["read", "write"])["token"]
        with self.db.transaction() as s:  # every project may run at once
            s.execute(update(Space).values(max_running=max(args.projects, 2)))

        (self.base / "logs").mkdir()
        self.urls = [f"http://127.0.0.1:{port}" for port in self.ports]
        for i in range(2):
            proc = self.start_server(i)
            self.servers.append(proc)
            wait_http(self.urls[i], proc)
        for _ in range(args.workers):
            self.workers.append(self.start_worker())
        self.http = httpx.Client(timeout=20, headers={"Authorization": f"Bearer {token}"})

        work = self.base / "work"
        work.mkdir()
        for i in range(1, args.projects + 1):
            name = f"soak{i}"
            repo = Repo(git_host, work, name, self.rng)
            repo.commit()
            config = {
                "project": name,
                "repo": repo.url,
                "environments": {
                    ENV: {
                        "hosts": [h.address for h in self.hosts],
                        "user": "root",
                        "webroot": f"/srv/www/{name}",
                        "releases": f"/srv/releases/{name}",
                        "keep_releases": 5,
                        "task_timeout": 60,
                        "tasks": {"post_release": HOOK},
                    }
                },
            }
            url = self.urls[i % 2]
            answer = self.http.post(url + "/api/v1/projects", json=config)
            if answer.status_code != 200:
                raise RuntimeError(f"applying {name}: {answer.status_code} {answer.text}")
            self.projects[name] = ProjectState(name, repo, config)

    def start_server(self, i: int) -> Proc:
        n = len(self.every_server) + 1
        proc = Proc(
            f"server-{'AB'[i]}{n}",
            ["serve", "--no-worker", "--port", str(self.ports[i]), "--no-access-log"],
            self.env,
            self.base / "logs" / f"server-{'AB'[i]}{n}.log",
        )
        self.every_server.append(proc)
        return proc

    def start_worker(self) -> Proc:
        n = len(self.every_worker) + 1
        proc = Proc(f"worker-{n}", ["worker"], self.env, self.base / "logs" / f"worker-{n}.log")
        self.every_worker.append(proc)
        return proc

    # requests ---------------------------------------------------------------------------

    def next_server(self) -> int:
        self.turn += 1
        return self.turn % 2

    def choose(self, state: ProjectState) -> tuple[str, str, dict[str, Any]]:
        """(kind, path, body) of the next request for the project."""
        roll = self.rng.random()
        if state.successes >= 2 and roll < 0.15:
            return "rollback", f"/api/v1/projects/{state.name}/rollbacks", {"env": ENV}
        if state.successes >= 1 and roll < 0.30:
            body = {"env": ENV, "config_only": True}
            return "config", f"/api/v1/projects/{state.name}/deploys", body
        sha = state.repo.commit()
        return "deploy", f"/api/v1/projects/{state.name}/deploys", {"env": ENV, "ref": sha}

    def post(self, server: int, path: str, body: dict[str, Any]) -> httpx.Response | str:
        assert self.http is not None
        try:
            return self.http.post(self.urls[server] + path, json=body)
        except httpx.ConnectError as exc:  # nothing was sent: safe to send again
            return f"ConnectError: {exc}"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"

    def in_outage(self, slack: float = 30.0) -> bool:
        """While the database is down, or within ``slack`` s of it being back."""
        if self.pg_down_since is not None:
            return True
        if self.outage_window is None:
            return False
        return time.time() < self.outage_window[1] + slack

    def ask(self, state: ProjectState) -> None:
        """One request for the project, asked again (up to RETRIES attempts) only when it
        cannot have made a deploy; a deploy a failed request did make is adopted."""
        if state.unsure:  # the last request ended without knowing: look first
            found = self.adopt(state, time.monotonic())
            if found is None:
                return  # the database cannot tell yet: ask nothing
            state.unsure = False
            if found:
                return
        kind, path, body = self.choose(state)
        server = self.next_server()
        pair = self.rng.random() < 0.25
        asked_at = time.monotonic()
        for attempt in range(1, RETRIES + 1):
            if pair and attempt == 1:  # both servers at once: exactly one may accept
                self.figures.pairs += 1
                futures = [self.pool.submit(self.post, s, path, body) for s in (server, 1 - server)]
                answers = [
                    (s, f.result()) for s, f in zip((server, 1 - server), futures, strict=True)
                ]
            else:
                answers = [(server, self.post(server, path, body))]
            outcome = self.judge(state, kind, answers, asked_at, pair and attempt == 1)
            if outcome == "done":
                return
            if outcome == "unsure":  # maybe made: look before asking again
                found = self.adopt(state, asked_at)
                if found is None:
                    state.unsure = True  # asked again at the next round, after a look
                    self.figures.given_up += 1
                    return
                if found:
                    return
            if attempt == RETRIES:
                self.figures.given_up += 1
                state.unsure = outcome == "unsure"
                return
            self.figures.retries += 1
            server = 1 - server  # the other one (a dead server's new process may be starting)
            time.sleep(0.3 * attempt)

    def judge(
        self,
        state: ProjectState,
        kind: str,
        answers: list[tuple[int, httpx.Response | str]],
        asked_at: float,
        pair: bool,
    ) -> str:
        """ "done" (accepted, refused or adopted), "again" (nothing can have been made) or
        "unsure" (a request may have made a deploy)."""
        accepted: list[tuple[int, dict[str, Any]]] = []
        holders: list[int] = []
        refused = 0
        unsure = False
        for server, answer in answers:
            label = "AB"[server]
            if isinstance(answer, str):
                self.figures.request_errors[f"{label}: {answer[:100]}"] += 1
                unsure = unsure or not answer.startswith("ConnectError")
                continue
            if answer.status_code == 201:
                accepted.append((server, answer.json()))
            elif answer.status_code == 409:
                error = answer.json().get("error", {})
                holder = (error.get("details") or {}).get("deploy_id")
                refused += 1
                if "is busy" in error.get("message", "") and holder is not None:
                    self.figures.busy_409 += 1
                    holders.append(int(holder))
                else:
                    self.figures.other_409[f"{kind}: {error.get('message', '')[:100]}"] += 1
            else:
                self.figures.request_errors[f"HTTP {answer.status_code} from {label}"] += 1
                unsure = True
                if answer.status_code >= 500:
                    if self.in_outage():
                        self.figures.outage.setdefault("http_5xx", Counter())[
                            f"{answer.status_code} {answer.text[:120]}"
                        ] += 1
                    else:
                        self.figures.violation(
                            f"server {label} answered {answer.status_code} to {kind} of "
                            f"{state.name}",
                            body=answer.text[:2000],
                        )
        if len(accepted) > 1:
            self.figures.violation(
                f"two servers both accepted a {kind} of {state.name} at once",
                ids=[a["id"] for _, a in accepted],
            )
        for server, made in accepted:
            self.track(state, int(made["id"]), kind, "AB"[server], asked_at)
        if pair and refused == len(answers):
            self.figures.both_refused += 1  # an older deploy still holds it: asked again later
        for holder in holders:  # a deploy an earlier, failed request made
            if holder not in self.tracked:
                self.adopt_id(state, holder, asked_at, "named by a 409")
        if accepted or refused:
            return "done"
        return "unsure" if unsure else "again"

    def track(self, state: ProjectState, deploy_id: int, kind: str, server: str, at: float) -> None:
        tracked = Tracked(deploy_id, state.name, kind, server, at, state.live)
        self.tracked[deploy_id] = tracked
        state.active = state.active or tracked
        self.asked += 1
        self.figures.accepted[server] += 1
        self.figures.kinds[kind] += 1

    def adopt(self, state: ProjectState, at: float) -> bool | None:
        """After a request that failed on the way: adopt the deploy it made, if it made one
        (the newest deploy of the project, when the driver does not know it). None when the
        database cannot be read."""
        assert self.db is not None
        try:
            with self.db.read() as s:
                row = s.execute(
                    select(Deploy.id)
                    .join(Project, Project.id == Deploy.project_id)
                    .where(Project.name == state.name)
                    .order_by(Deploy.id.desc())
                    .limit(1)
                ).scalar()
        except DBAPIError as exc:
            self.figures.driver_db_errors[type(exc.orig).__name__] += 1
            return None
        if row is None or int(row) in self.tracked:
            return False
        self.adopt_id(state, int(row), at, "after a failed request")
        return True

    def adopt_id(self, state: ProjectState, deploy_id: int, at: float, why: str) -> None:
        assert self.db is not None
        kind = "?"
        with contextlib.suppress(DBAPIError), self.db.read() as s:
            kind = str(s.scalar(select(Deploy.kind).where(Deploy.id == deploy_id)) or "?")
        self.figures.adopted += 1
        self.figures.notes.append(f"adopted #{deploy_id} of {state.name} {why}")
        self.track(state, deploy_id, kind, "?", at)

    # kills ------------------------------------------------------------------------------

    def kill_one(self) -> None:
        """The next victim: a worker and a server in turn (each in turn among its own)."""
        n = len(self.figures.kills)
        if n % 2 == 1 and not self.args.workers_only:
            self.kill_server((n // 2) % 2)
            return
        slot = (n // 2 if not self.args.workers_only else n) % len(self.workers)
        victim = self.workers[slot]
        running: dict[int, str] = {}
        assert self.db is not None
        try:
            with self.db.read() as s:
                rows = s.execute(
                    select(Deploy.id, Deploy.stages).where(
                        Deploy.status == "running", Deploy.worker.like(f"%:{victim.pid}:%")
                    )
                ).all()
            # each deploy the victim ran, with the stage it was in
            running = {
                int(i): next((st["name"] for st in reversed(stages or [])), "")
                for i, stages in rows
            }
        except DBAPIError as exc:
            self.figures.driver_db_errors[type(exc.orig).__name__] += 1
        victim.kill()
        self.workers[slot] = self.start_worker()
        at = round(time.monotonic() - self.started, 1)
        self.figures.kills.append(
            {"at": at, "what": "worker", "pid": victim.pid, "running": running}
        )
        print(
            f"[{at:7.1f}s] SIGKILL {victim.name} (pid {victim.pid}), running "
            + (", ".join(f"#{i} in {st or 'start'}" for i, st in running.items()) or "nothing"),
            file=sys.stderr,
            flush=True,
        )

    def kill_server(self, slot: int) -> None:
        victim = self.servers[slot]
        victim.kill()
        self.servers[slot] = self.start_server(slot)  # same port; not waited for
        at = round(time.monotonic() - self.started, 1)
        self.figures.kills.append({"at": at, "what": "server", "pid": victim.pid, "running": {}})
        print(
            f"[{at:7.1f}s] SIGKILL {victim.name} (pid {victim.pid}), a new one on "
            f"{self.urls[slot]}",
            file=sys.stderr,
            flush=True,
        )

    # the database restart ---------------------------------------------------------------

    def probe(self) -> dict[str, Any]:
        """What the servers answer and which processes live, at one moment."""
        out: dict[str, Any] = {"t": round(time.monotonic() - self.started, 1)}
        for i, url in enumerate(self.urls):
            for path in ("/healthz", "/readyz"):
                try:
                    code: int | str = httpx.get(url + path, timeout=3).status_code
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                out[f"{'AB'[i]}{path}"] = code
        out["workers_alive"] = sum(w.alive() for w in self.workers)
        out["servers_alive"] = sum(w.alive() for w in self.servers)
        return out

    @staticmethod
    def log_started(proc: Proc) -> bool:
        with contextlib.suppress(OSError):
            return proc.log.stat().st_size > 0
        return False

    def restart_pg(self) -> None:
        """One step of the PostgreSQL restart, called every round of the driver (which keeps
        asking, polling and checking meanwhile): wait until every process is up and ready (a
        server or worker started after a kill takes 10-50 s to start at this machine's load,
        and the outage alone is to be measured); fast shutdown; ``--pg-down`` s down; start
        it again; then probe until both servers are ready. Nothing else is restarted: the
        servers and workers must come back on their own."""
        assert self.pg is not None and self.db is not None
        o = self.figures.outage
        now = time.time()
        if self.pg_phase == "":
            self.pg_phase, self.pg_since = "waiting", now
        if self.pg_phase == "waiting":
            if now < self.pg_next_probe:
                return
            self.pg_next_probe = now + 2
            probe = self.probe()
            ready = all(probe[f"{x}/readyz"] == 200 for x in "AB") and all(
                w.ready_at() <= now and self.log_started(w) for w in self.workers
            )
            if not ready and now < self.pg_since + 120:
                return
            o["waited_for_processes_seconds"] = round(now - self.pg_since, 1)
            o["at"] = round(time.monotonic() - self.started, 1)
            with self.db.read() as s:
                o["running_at_stop"] = sorted(
                    int(i) for i in s.scalars(select(Deploy.id).where(Deploy.status == "running"))
                )
                o["queued_at_stop"] = sorted(
                    int(i) for i in s.scalars(select(Deploy.id).where(Deploy.status == "queued"))
                )
            print(f"[{o['at']:7.1f}s] PostgreSQL: fast shutdown", file=sys.stderr, flush=True)
            t0 = time.time()
            self.pg_down_since = t0
            self.pg.stop("fast")
            o["stop_seconds"] = round(time.time() - t0, 2)
            self.pg_phase, self.pg_next_probe = "down", 0.0
            return
        if self.pg_phase == "down":
            assert self.pg_down_since is not None
            t0 = self.pg_down_since
            if now < t0 + self.args.pg_down:
                if now >= self.pg_next_probe:
                    self.pg_next_probe = now + 1
                    self.pg_probes.append(self.probe())
                return
            self.pg.start()
            t1 = time.time()
            self.pg_down_since = None
            self.outage_window = (t0, t1)
            o["down_seconds"] = round(t1 - t0, 2)
            o["window_wall"] = (t0, t1)
            print(
                f"[{time.monotonic() - self.started:7.1f}s] PostgreSQL: up again after "
                f"{o['down_seconds']:.1f}s",
                file=sys.stderr,
                flush=True,
            )
            self.pg_phase, self.pg_next_probe = "recovering", 0.0
            return
        if self.pg_phase == "recovering":
            assert self.outage_window is not None
            t1 = self.outage_window[1]
            if now < self.pg_next_probe:
                return
            self.pg_next_probe = now + 0.5
            probe = self.probe()
            self.pg_probes.append(probe)
            if all(probe[f"{x}/readyz"] == 200 for x in "AB"):
                o["servers_ready_after_seconds"] = round(time.time() - t1, 2)
            elif now < t1 + 60:
                return
            else:
                o["servers_ready_after_seconds"] = None
            o["probes"] = self.pg_probes
            self.pg_phase = "done"
            self.pg_restarted = True

    # checks -----------------------------------------------------------------------------

    def poll(self) -> None:
        """Find the deploys that ended since the last round and check each."""
        assert self.db is not None
        waiting = [t.id for t in self.tracked.values() if t.finished_at is None and not t.status]
        if not waiting:
            return
        with self.db.read() as s:
            rows = s.scalars(select(Deploy).where(Deploy.id.in_(waiting))).all()
            by_project = Counter(
                str(name)
                for name in s.scalars(
                    select(Project.name)
                    .join(Deploy, Deploy.project_id == Project.id)
                    .where(Deploy.status.in_(ACTIVE_STATUSES))
                )
            )
        for name, n in by_project.items():
            if n > 1:
                self.figures.violation(f"{name} has {n} active deploys at once")
        for row in rows:
            if row.status in FINAL:
                self.ended(self.tracked[row.id], row)

    def ended(self, t: Tracked, row: Deploy) -> None:
        t.status, t.finished_at, t.ended_at = row.status, row.finished_at, time.monotonic()
        t.code = (row.error or {}).get("code", "") if row.status != "success" else ""
        t.message = str((row.error or {}).get("message", ""))[:300] if t.code else ""
        t.recovered = any(stage.get("name") == "recover" for stage in row.stages or [])
        if row.finished_at and row.created_at:
            t.seconds = (row.finished_at - row.created_at).total_seconds()
        self.figures.ended.append(t)
        state = self.projects[t.project]
        if state.active is t:
            state.active = None
        self.check(t, row, state)
        if t.status == "success" and t.kind == "deploy":
            state.successes += 1
        n = len(self.figures.ended)
        at = time.monotonic() - self.started
        extra = f" {t.code}" if t.code else ""
        took = " (taken over)" if t.recovered else ""
        print(
            f"[{at:7.1f}s] {n:4d} ended: #{t.id} {t.project} {t.kind} {t.status}{extra}{took} "
            f"in {t.seconds:.1f}s",
            file=sys.stderr,
            flush=True,
        )

    def check(self, t: Tracked, row: Deploy, state: ProjectState) -> None:
        """Everything that must hold once a deploy has ended."""
        assert self.db is not None
        v = self.figures.violation
        # a deploy's own new release (unnamed until its worker resolved it: a config-only
        # deploy's target_release is the live release it copies); a rollback's target
        if row.kind == "rollback":
            release = row.target_release or row.release_name
        else:
            release = row.release_name
        with self.db.read() as s:
            outcomes = s.scalars(
                select(AuditEntry.action).where(
                    AuditEntry.target == f"deploy:{row.id}",
                    AuditEntry.action.in_([f"{row.kind}.{st}" for st in FINAL]),
                )
            ).all()
            host_rows = {
                h.host: h.status
                for h in s.scalars(select(DeployHost).where(DeployHost.deploy_id == row.id))
            }
            lock = s.get(Lock, locks.deploy_key(t.project, ENV))
            recorded = {
                host_address(h.host): h.current_release
                for h in s.scalars(
                    select(HostState).where(
                        HostState.project_id == row.project_id, HostState.env == ENV
                    )
                )
            }
        if list(outcomes) != [f"{row.kind}.{row.status}"]:
            v("not exactly one outcome audit row matching its status", row.id, audit=outcomes)
        open_rows = {h: st for h, st in host_rows.items() if st not in HOST_FINAL}
        if open_rows:
            v("host rows left in a non-final state", row.id, hosts=open_rows)
        if lock is not None:
            v(
                "the project lock is still held after the deploy ended",
                row.id,
                lock={"owner": lock.owner, "deploy_id": lock.deploy_id, "holder": lock.holder},
            )
        fleet = {h.address: served(h, t.project) for h in self.hosts}
        for h in self.hosts:
            links, staging = leftovers(h, t.project)
            if links:
                v(f"half-made switch link left on {h.name}", row.id, host=h.address, links=links)
            if staging:
                self.figures.notes.append(f"#{row.id}: staging copy left on {h.name}: {staging}")
        values = set(fleet.values())
        one = next(iter(values)) if len(values) == 1 else "?"
        detail = {
            "project": t.project,
            "kind": row.kind,
            "status": row.status,
            "release": release,
            "error": row.error,
            "hosts_serve": fleet,
            "recorded_live": recorded,
            "served_before": t.before,
            "host_rows": host_rows,
        }
        if len(values) != 1:
            if t.before == "?" and fleet == state.hosts and state.split_by is not None:
                v(f"the fleet is still split, as #{state.split_by} left it", row.id, **detail)
            else:
                v("the fleet is split after the deploy", row.id, **detail)
                state.split_by = row.id
        else:
            state.split_by = None
        for h in self.hosts:
            name = fleet[h.address]
            if name is None:
                continue
            if name.startswith("<"):
                v(f"{h.name} serves {name}", row.id, **detail)
                continue
            problem = release_problem(h, t.project, name, state.repo.index)
            if problem:
                v(f"{h.name} serves {name}, which is not complete: {problem}", row.id, **detail)
        if any(recorded.get(h.address) != fleet[h.address] for h in self.hosts) or set(
            recorded
        ) - set(fleet):
            v(
                "the database's live-release record differs from what the hosts serve",
                row.id,
                **detail,
            )
        if row.status == "success":
            if values != {release}:
                v(f"success, but not every host serves its release {release}", row.id, **detail)
        else:
            # a rollback may have been carried forward to its target
            allowed = {t.before, release} if row.kind == "rollback" else {t.before}
            if t.before != "?" and one != "?" and one not in allowed:
                v(
                    f"{row.status}, but the hosts serve {one}, not what they served before "
                    f"({t.before})"
                    + (" or the rollback's target" if row.kind == "rollback" else ""),
                    row.id,
                    **detail,
                )
            if row.kind != "rollback" and release and one == release:
                v(f"{row.status}, but every host serves the deploy's own release", row.id, **detail)
        message = str((row.error or {}).get("message", ""))
        if (
            "not in order" in message
            and one != "?"
            and recorded == {h.address: one for h in self.hosts if one is not None}
        ):
            self.figures.notes.append(
                f"#{row.id} ({t.project} {row.kind}): its error names hosts not in order, yet "
                f"every host serves {one}, as recorded: {message[:400]}"
            )
        state.live, state.hosts = one, fleet

    def recheck(self) -> None:
        """Ended deploys stay ended once: the same status and finished_at, one outcome."""
        assert self.db is not None
        ended = {t.id: t for t in self.figures.ended}
        if not ended:
            return
        with self.db.read() as s:
            rows = s.execute(
                select(Deploy.id, Deploy.status, Deploy.finished_at, Deploy.kind).where(
                    Deploy.id.in_(list(ended))
                )
            ).all()
            audit = Counter(
                str(target)
                for target, action in s.execute(
                    select(AuditEntry.target, AuditEntry.action).where(
                        AuditEntry.target.in_([f"deploy:{i}" for i in ended])
                    )
                )
                if action.rpartition(".")[2] in FINAL
            )
        for deploy_id, status, finished_at, _kind in rows:
            t = ended[deploy_id]
            if (status, finished_at) != (t.status, t.finished_at):
                self.figures.violation(
                    "an ended deploy changed afterwards",
                    deploy_id,
                    was={"status": t.status, "finished_at": str(t.finished_at)},
                    now={"status": status, "finished_at": str(finished_at)},
                )
                t.status, t.finished_at = status, finished_at
            if audit[f"deploy:{deploy_id}"] != 1:
                self.figures.violation(
                    f"{audit[f'deploy:{deploy_id}']} outcome audit rows", deploy_id
                )
                audit[f"deploy:{deploy_id}"] = 1  # reported once

    def final_checks(self) -> None:
        """After the run: nothing active, no lock, every deploy known, fleets still whole."""
        assert self.db is not None
        self.recheck()
        with self.db.read() as s:
            ids = {int(i) for i in s.scalars(select(Deploy.id))}
            active = s.scalars(select(Deploy.id).where(Deploy.status.in_(ACTIVE_STATUSES))).all()
            held = [(lk.key, lk.owner) for lk in s.scalars(select(Lock))]
            open_rows = s.execute(
                select(DeployHost.deploy_id, DeployHost.host, DeployHost.status).where(
                    DeployHost.status.not_in(HOST_FINAL)
                )
            ).all()
        if ids - set(self.tracked):
            self.figures.violation(
                "deploys in the database that no request made", ids=sorted(ids - set(self.tracked))
            )
        if active:
            self.figures.violation("deploys still active at the end", ids=list(active))
        if held:
            self.figures.violation("locks held at the end", locks=held)
        if open_rows:
            self.figures.violation(
                "host rows not final at the end", rows=[tuple(r) for r in open_rows]
            )
        for state in self.projects.values():
            if state.live == "?":
                continue
            now = {h.address: served(h, state.name) for h in self.hosts}
            if set(now.values()) != {state.live}:
                self.figures.violation(
                    f"{state.name}'s hosts changed after its last deploy ended",
                    expected=state.live,
                    hosts_serve=now,
                )

    # the run ----------------------------------------------------------------------------

    def run(self) -> None:
        args = self.args
        self.started = time.monotonic()
        deadline = self.started + args.deadline
        next_kill = self.started + args.kill_every
        next_recheck = self.started + RECHECK
        while True:
            now = time.monotonic()
            if now > deadline:
                self.figures.violation(
                    f"the global deadline ({args.deadline:.0f}s) passed with "
                    f"{len(self.figures.ended)} of {args.deploys} deploys ended"
                )
                break
            try:
                self.poll()
            except DBAPIError as exc:  # the driver's own reads; counted, tried next round
                self.figures.driver_db_errors[type(exc.orig).__name__] += 1
            in_flight = [t for t in self.tracked.values() if not t.status]
            for t in in_flight:
                if now - t.asked_at > args.stuck:
                    self.figures.violation(
                        f"did not end within {args.stuck:.0f}s", t.id, project=t.project
                    )
                    t.status = "stuck"
                    state = self.projects[t.project]
                    state.stuck, state.active = True, None
            asking = args.duration is None or now - self.started < args.duration
            if (self.asked >= args.deploys or not asking) and not in_flight:
                break
            for state in self.projects.values():
                if self.asked >= args.deploys or not asking:
                    break
                if state.active is None and not state.stuck:
                    self.ask(state)
            if now >= next_kill and self.pg_phase in ("", "done"):  # never in the outage
                self.kill_one()
                next_kill = now + args.kill_every
            if (
                self.pg is not None
                and args.restart_pg_at is not None
                and not self.pg_restarted
                and now - self.started >= args.restart_pg_at
            ):
                self.restart_pg()
                if self.pg_restarted:
                    next_kill = max(next_kill, time.monotonic() + args.kill_every / 2)
            if now >= next_recheck:
                try:
                    self.recheck()
                except DBAPIError as exc:
                    self.figures.driver_db_errors[type(exc.orig).__name__] += 1
                next_recheck = now + RECHECK
            for i, worker in enumerate(self.workers):  # a worker that died by itself
                if not worker.alive():
                    self.figures.violation(
                        f"{worker.name} exited by itself ({worker.popen.returncode})",
                        log=worker.log.read_text(errors="replace")[-3000:],
                    )
                    self.workers[i] = self.start_worker()
            for i, server in enumerate(self.servers):  # a server that died by itself
                if not server.alive():
                    self.figures.violation(
                        f"{server.name} exited by itself ({server.popen.returncode})",
                        log=server.log.read_text(errors="replace")[-3000:],
                    )
                    self.servers[i] = self.start_server(i)
            time.sleep(POLL)
        self.wall = time.monotonic() - self.started
        self.final_checks()
        self.pickups = self.pickup()

    # queue pick-up ----------------------------------------------------------------------

    def pickup(self) -> dict[str, Any]:
        """Queue pick-up (created_at → started_at) over the deploys queued while a worker was
        free (the method is in the module's docstring), and what the outage did."""
        assert self.db is not None
        with self.db.read() as s:
            rows = [
                (int(i), str(k), c.timestamp(), st.timestamp() if st else None,
                 fi.timestamp() if fi else None, str(w), str(status))
                for i, k, c, st, fi, w, status in s.execute(
                    select(Deploy.id, Deploy.kind, Deploy.created_at, Deploy.started_at,
                           Deploy.finished_at, Deploy.worker, Deploy.status)
                )
            ]  # fmt: skip
        concurrency = load_settings(self.env).worker_concurrency
        lives = {w.pid: (w.ready_at(), w.died or float("inf")) for w in self.every_worker}

        def alive(pid: int | None, t: float) -> bool:
            if pid is None or pid not in lives:
                return False
            ready, died = lives[pid]
            return ready <= t < died

        def pid_of(worker: str) -> int | None:
            parts = worker.split(":")
            return int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else None

        window = self.outage_window
        free: list[float] = []
        every: list[float] = []
        across: list[int] = []
        busy_skipped = 0
        for i, kind, created, started, _fin, _w, _status in rows:
            if started is None:
                continue
            wait = max(0.0, started - created)
            every.append(wait)
            if window is not None and created <= window[1] + 5 and started >= window[0]:
                across.append(i)
                continue
            workers = sum(alive(pid, created) for pid in lives)
            capacity = workers * (concurrency if kind == "rollback" else concurrency - 1)
            load = 0
            for j, _k, c2, st2, fi2, w2, _s2 in rows:
                if j == i:
                    continue
                if st2 is not None and st2 <= created and (fi2 is None or fi2 > created):
                    load += alive(pid_of(w2), created)
                elif (
                    c2 < created
                    and (st2 is None or st2 > created)
                    and (fi2 is None or fi2 > created)
                ):
                    load += 1
            if load < capacity:
                free.append(wait)
            else:
                busy_skipped += 1

        def pct(values: list[float]) -> dict[str, float | int]:
            if not values:
                return {"n": 0}
            v = sorted(values)

            def at(q: float) -> float:
                return v[min(len(v) - 1, round(q * (len(v) - 1)))]

            return {"n": len(v), "p50": at(0.5), "p95": at(0.95), "p99": at(0.99), "max": v[-1]}

        out: dict[str, Any] = {
            "concurrency": concurrency,
            "while_a_worker_was_free": pct(free),
            "all_deploys": pct(every),
            "queued_while_none_free": busy_skipped,
            "across_the_outage": len(across),
        }
        if window is not None:
            t0, t1 = window
            after = sorted(r[3] for r in rows if r[3] is not None and r[3] > t1)
            o = self.figures.outage
            o["first_start_after_back_seconds"] = round(after[0] - t1, 2) if after else None
            spanning = [r for r in rows if r[2] < t1 and (r[4] is None or r[4] > t0)]
            o["deploys_in_flight_across"] = {
                str(r[0]): {"kind": r[1], "status": r[6]} for r in spanning
            }
            o["their_statuses"] = dict(Counter(r[6] for r in spanning))
            o["waits_across_seconds"] = pct(
                [r[3] - r[2] for r in rows if r[0] in set(across) and r[3] is not None]
            )
            o["process_log_lines_in_outage"] = self.outage_logs(t0, t1 + 30)
        return out

    def outage_logs(self, t0: float, t1: float) -> dict[str, Any]:
        """What each process logged at WARNING or above between t0 and t1 (wall clock)."""
        out: dict[str, Any] = {}
        for proc in [*self.every_worker, *self.every_server]:
            lines = []
            with contextlib.suppress(OSError):
                for line in proc.log.read_text(errors="replace").splitlines():
                    head = line.split(" ", 2)
                    if len(head) < 3 or not head[0][:4].isdigit():
                        continue
                    try:
                        t = datetime.fromisoformat(head[0].replace("Z", "+00:00")).timestamp()
                    except ValueError:
                        continue
                    if t0 <= t <= t1 and head[1] in ("WARNING", "ERROR", "CRITICAL"):
                        lines.append(line[:300])
            if lines:
                out[proc.name] = {"count": len(lines), "first": lines[:3], "last": lines[-1]}
        return out

    # evidence and teardown --------------------------------------------------------------

    def evidence(self) -> Path | None:
        """On violations: their deploys' records and logs, and every process's log."""
        if (not self.figures.violations and not self.args.evidence) or self.db is None:
            return None
        out = Path(self.args.evidence or tempfile.mkdtemp(prefix="ferryman-soak-evidence-"))
        out.mkdir(parents=True, exist_ok=True)
        ids = sorted({v["deploy"] for v in self.figures.violations if v.get("deploy")})
        deploys: dict[str, Any] = {}
        with self.db.read() as s:
            for deploy_id in ids:
                row = s.get(Deploy, deploy_id)
                if row is None:
                    continue
                deploys[str(deploy_id)] = {
                    "kind": row.kind,
                    "status": row.status,
                    "release": row.release_name,
                    "target": row.target_release,
                    "commit": row.commit,
                    "worker": row.worker,
                    "error": row.error,
                    "stages": row.stages,
                    "created_at": str(row.created_at),
                    "started_at": str(row.started_at),
                    "finished_at": str(row.finished_at),
                    "hosts": {
                        h.host: {"status": h.status, "previous": h.previous_release}
                        for h in s.scalars(
                            select(DeployHost).where(DeployHost.deploy_id == deploy_id)
                        )
                    },
                    "log": [
                        f"{ln.ts.isoformat()} [{ln.stage}] {ln.host} {ln.stream} {ln.text}"
                        for ln in s.scalars(
                            select(LogLine)
                            .where(LogLine.deploy_id == deploy_id)
                            .order_by(LogLine.id)
                        )
                    ],
                }
        (out / "violations.json").write_text(
            json.dumps(
                {"violations": self.figures.violations, "deploys": deploys}, indent=2, default=str
            )
        )
        for log in (self.base / "logs").glob("*.log"):
            shutil.copy(log, out / log.name)
        if self.pg is not None and self.pg.log.exists():
            shutil.copy(self.pg.log, out / "postgres.log")
        return out

    def teardown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.http is not None:
            self.http.close()
        for proc in self.workers:  # a drain: running deploys finish or stop safely
            with contextlib.suppress(Exception):
                proc.stop(45)
        for proc in [*self.every_worker, *self.every_server]:
            with contextlib.suppress(Exception):
                proc.stop(15)
        if self.db is not None:
            self.db.dispose()
        if self.db_name:
            with contextlib.suppress(Exception):
                databases.drop(self.db_url)
        if self.pg is not None:
            with contextlib.suppress(Exception):
                self.pg.remove()
        if self.fleet is not None:
            self.fleet.stop()
        shutil.rmtree(self.base, ignore_errors=True)


# --- the summary ----------------------------------------------------------------------------


def summary(soak: Soak, evidence: Path | None) -> dict[str, Any]:
    f, args = soak.figures, soak.args
    ended = f.ended
    statuses = Counter(t.status for t in ended)
    codes = Counter(t.code for t in ended if t.code)
    by_kind = Counter(f"{t.kind} {t.status}" for t in ended)
    taken = [t for t in ended if t.recovered]
    lost = [t for t in ended if t.code == "worker_lost"]
    times = sorted(t.seconds for t in ended) or [0.0]
    minutes = soak.wall / 60 if soak.wall else 0.0
    out: dict[str, Any] = {
        "deploys_ended": len(ended),
        "asked": soak.asked,
        "by_status": dict(statuses),
        "by_error_code": dict(codes),
        "by_kind_and_status": dict(sorted(by_kind.items())),
        "kills": len(f.kills),
        "kills_by_what": dict(Counter(k["what"] for k in f.kills)),
        "in_flight_at_kills": sum(len(k["running"]) for k in f.kills),
        "taken_over": len(taken),
        "taken_over_by_status": dict(Counter(t.status for t in taken)),
        "ended_worker_lost": len(lost),
        "accepted_by_server": dict(f.accepted),
        "pairs_sent_to_both_servers": f.pairs,
        "busy_409": f.busy_409,
        "pairs_both_refused": f.both_refused,
        "other_409": dict(f.other_409),
        "request_errors": dict(f.request_errors),
        "requests_retried": f.retries,
        "deploys_adopted": f.adopted,
        "requests_given_up": f.given_up,
        "driver_db_errors": dict(f.driver_db_errors),
        "queue_pickup_seconds": soak.pickups,
        "postgres_restart": f.outage,
        "deploy_seconds": {
            "p50": statistics.median(times),
            "p95": times[min(len(times) - 1, int(len(times) * 0.95))],
            "max": times[-1],
        },
        "wall_seconds": soak.wall,
        "deploys_per_minute": len(ended) / minutes if minutes else 0.0,
        "violations": f.violations,
        "not_success": [
            {
                "id": t.id,
                "project": t.project,
                "kind": t.kind,
                "status": t.status,
                "code": t.code,
                "recovered": t.recovered,
                "message": t.message,
            }
            for t in ended
            if t.status != "success"
        ],
        "notes": f.notes,
        "settings": {
            "hosts": args.hosts,
            "projects": args.projects,
            "workers": args.workers,
            "kill_every": args.kill_every,
            "lease": args.lease,
            "seed": args.seed,
            "private_pg": args.private_pg,
            "restart_pg_at": args.restart_pg_at,
            "pg_down": args.pg_down,
            "net": soak.net,
        },
        "load_average": os.getloadavg(),
    }
    victims = "a worker" if args.workers_only else "a worker or a server (in turn)"
    print(
        f"\nsoak: {args.hosts} hosts, {args.projects} projects, 2 servers + {args.workers} "
        f"workers on {'a private ' if args.private_pg else ''}PostgreSQL, lease {args.lease:g}s, "
        f"{victims} SIGKILLed every {args.kill_every:g}s"
        + (f", PostgreSQL restarted at {args.restart_pg_at:g}s" if args.restart_pg_at else "")
        + f"; load average now {os.getloadavg()}\n"
    )
    print(f"deploys ended          {len(ended)} (asked {soak.asked})")
    print(f"by status              {dict(statuses)}")
    print(f"by error code          {dict(codes) or '-'}")
    print(f"by kind and status     {dict(sorted(by_kind.items()))}")
    print(
        f"kills                  {dict(Counter(k['what'] for k in f.kills))} "
        f"({out['in_flight_at_kills']} deploys running on the killed workers)"
    )
    stages = Counter(st or "start" for k in f.kills for st in k["running"].values())
    out["stage_at_kill"] = dict(stages)
    print(f"their stage at a kill  {dict(stages) or '-'}")
    print(
        f"taken over             {len(taken)} ({dict(Counter(t.status for t in taken)) or '-'}); "
        f"ended worker_lost {len(lost)}"
    )
    print(
        f"requests accepted      {dict(f.accepted)}; sent to both servers at once {f.pairs}; "
        f"409 busy {f.busy_409} (pairs refused by both: {f.both_refused})"
    )
    if f.other_409:
        print(f"other 409s             {dict(f.other_409)}")
    if f.request_errors:
        print(f"request errors         {dict(f.request_errors)}")
    print(
        f"requests retried       {f.retries}; deploys adopted {f.adopted}; "
        f"given up {f.given_up}; driver db errors {dict(f.driver_db_errors) or '-'}"
    )
    q = soak.pickups
    for label, key in (
        ("pick-up, worker free", "while_a_worker_was_free"),
        ("pick-up, all", "all_deploys"),
    ):
        d = q.get(key, {})
        if d.get("n"):
            print(
                f"{label:<22} n {d['n']}: p50 {d['p50']:.3f}s, p95 {d['p95']:.3f}s, "
                f"p99 {d['p99']:.3f}s, max {d['max']:.3f}s"
            )
    if q:
        print(
            f"queued while none free {q['queued_while_none_free']}; "
            f"waits across the outage {q['across_the_outage']}"
        )
    if f.outage:
        o = {k: v for k, v in f.outage.items() if k not in ("probes", "deploys_in_flight_across")}
        print(f"postgres restart       {json.dumps(o, default=str)}")
        for probe in f.outage.get("probes", []):
            print(f"  probe {json.dumps(probe)}")
    d = out["deploy_seconds"]
    print(f"deploy seconds         p50 {d['p50']:.1f}, p95 {d['p95']:.1f}, max {d['max']:.1f}")
    print(f"wall time              {soak.wall:.0f}s; {out['deploys_per_minute']:.1f} deploys/min")
    print(f"notes                  {len(f.notes)}" + (" (the first 10:)" if f.notes else ""))
    for note in f.notes[:10]:
        print(f"  - {note}")
    print(f"violations             {len(f.violations)}")
    for v in f.violations:
        shown = f"#{v['deploy']} " if v.get("deploy") is not None else ""
        rest = {k: val for k, val in v.items() if k not in ("what", "deploy")}
        print(
            f"  - {shown}{v['what']}" + (f"\n    {json.dumps(rest, default=str)}" if rest else "")
        )
    if evidence is not None:
        print(f"evidence kept in {evidence}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deploys", type=int, default=200, help="deploys to run to their end")
    parser.add_argument("--kill-every", type=float, default=30, help="seconds between kills")
    parser.add_argument("--hosts", type=int, default=6)
    parser.add_argument("--projects", type=int, default=4)
    parser.add_argument("--workers", type=int, default=3, help="ferryman worker processes")
    parser.add_argument("--net", default=NET, help="the fleet's /24 (127.X.Y)")
    parser.add_argument("--port", type=int, default=0, help="servers' first port (P, P+1)")
    parser.add_argument(
        "--workers-only", action="store_true", help="kill workers only, never a server"
    )
    parser.add_argument(
        "--private-pg", action="store_true", help="a private PostgreSQL on NET.251:P+2"
    )
    parser.add_argument(
        "--restart-pg-at", type=float, default=None, help="seconds in: restart PostgreSQL"
    )
    parser.add_argument("--pg-down", type=float, default=5, help="seconds it stays down")
    parser.add_argument("--lease", type=float, default=6, help="FERRYMAN_LOCK_LEASE")
    parser.add_argument(
        "--duration", type=float, default=None, help="ask no new deploy after this many s"
    )
    parser.add_argument("--deadline", type=float, default=2700, help="global limit, seconds")
    parser.add_argument("--stuck", type=float, default=300, help="a deploy's own limit")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--evidence", type=Path, help="where to keep evidence of violations")
    args = parser.parse_args()
    if not args.net.startswith("127.") or args.net.count(".") != 2:
        sys.exit(f"soak: --net must be a loopback /24 like 127.0.170, not {args.net}")
    if args.restart_pg_at is not None and not args.private_pg:
        sys.exit("soak: --restart-pg-at needs --private-pg (the shared server is never restarted)")
    if args.private_pg:
        if pg_unavailable():
            sys.exit(f"soak: {pg_unavailable()}")
    elif databases.unavailable("postgresql"):
        sys.exit(f"soak: {databases.unavailable('postgresql')}")

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(f"soak: stopped by signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    soak = Soak(args)
    out: dict[str, Any] | None = None
    try:
        soak.setup()
        soak.run()
        out = summary(soak, soak.evidence())
    finally:
        if out is None and soak.figures.violations:  # stopped by an error: keep what was found
            with contextlib.suppress(Exception):
                print(f"evidence kept in {soak.evidence()}", file=sys.stderr)
        soak.teardown()
    if args.json and out is not None:
        args.json.write_text(json.dumps(out, indent=2, default=str))
    sys.exit(1 if soak.figures.violations else 0)


if __name__ == "__main__":
    main()
