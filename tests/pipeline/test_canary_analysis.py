"""Metric canary analysis on the real fleet, judged by a real Prometheus (Debian's package)
started by the tests on this worker's loopback range, scraping every second a small test
application listening on each fleet host's own address. The application counts requests
and their latencies, and degrades (errors and slow answers) while the release its host
serves carries ``degrade.txt`` — so a canary degrades exactly when its new release does."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from ferryman.errors import ConfigError
from ferryman.outbound import parse_allow
from ferryman.services import analysis, deploy_views, projects, rollouts
from ferryman.testing.fleet import FleetHost
from tests.conftest import NET
from tests.helpers import (
    ADMIN,
    Repo,
    apply,
    deploy,
    finish,
    live,
    project_config,
    read_live,
    unique,
)
from tests.outbound_policy import allow_outbound

pytestmark = pytest.mark.fleet
APP_PORT = 18091  # the test application, on each fleet host's address
PROMETHEUS = f"{NET}.90"  # the tests' Prometheus (and .91, .92: nothing, a hostile one)
PROMETHEUS_PORT = 19090
NOTHING = f"{NET}.91"  # nothing listens here
HOSTILE = f"{NET}.92"
LOOPBACK_NET = parse_allow(f"{NET}.0/24")

# Rates over 5 s of 1 s scrapes: a loaded machine delays scrapes, and a window holding fewer
# than two samples has no rate — "no data", which pauses the rollout (fail safe) instead of
# judging it. 5 s still shows a canary's degradation from its first second.
ERROR_RATE = (
    'sum(rate(http_requests_total{instance=~"{HOSTS_RE}",code=~"5.."}[5s]))'
    ' / sum(rate(http_requests_total{instance=~"{HOSTS_RE}"}[5s]))'
)
P99 = (
    "histogram_quantile(0.99, sum by (le) "
    '(rate(http_request_duration_seconds_bucket{instance=~"{HOSTS_RE}"}[5s])))'
)


class _App(http.server.BaseHTTPRequestHandler):
    """``/metrics`` in Prometheus' text format. Each scrape counts 100 requests: all 200s
    in under 0.1 s — or, while the live release has ``degrade.txt``, 40 of them 500s and
    every one slower than 0.5 s."""

    host: FleetHost
    project: str
    counts: dict[str, float]

    def do_GET(self) -> None:
        name = live(self.host, self.project)
        marker = self.host.path(f"/srv/releases/{self.project}/{name}/degrade.txt")
        sick = bool(name) and marker.exists()
        c = self.counts
        c["ok"] += 60 if sick else 100
        c["err"] += 40 if sick else 0
        c["fast"] += 0 if sick else 100
        c["slow"] += 100 if sick else 0
        c["sum"] += 80.0 if sick else 5.0
        n = c["fast"] + c["slow"]
        body = "\n".join(
            [
                "# TYPE http_requests_total counter",
                f'http_requests_total{{code="200"}} {c["ok"]}',
                f'http_requests_total{{code="500"}} {c["err"]}',
                "# TYPE http_request_duration_seconds histogram",
                f'http_request_duration_seconds_bucket{{le="0.1"}} {c["fast"]}',
                f'http_request_duration_seconds_bucket{{le="0.5"}} {c["fast"]}',
                f'http_request_duration_seconds_bucket{{le="1"}} {n}',
                f'http_request_duration_seconds_bucket{{le="+Inf"}} {n}',
                f"http_request_duration_seconds_sum {c['sum']}",
                f"http_request_duration_seconds_count {n}",
                "",
            ]
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


def _wait_ready(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url, timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready in {seconds}s")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def prometheus(fleet, tmp_path_factory) -> Iterator[str]:
    """A real Prometheus scraping the test application on every fleet host each second."""
    binary = shutil.which("prometheus")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's prometheus is not installed (scripts/setup-system)")
        pytest.skip("Debian's prometheus is not installed (scripts/setup-system)")
    home = tmp_path_factory.mktemp("prometheus")
    hosts = [f"{h.address}:{APP_PORT}" for h in fleet.hosts if h.name != "git"]
    (home / "prometheus.yml").write_text(
        json.dumps(  # YAML is a superset of JSON
            {
                "global": {"scrape_interval": "1s", "scrape_timeout": "900ms"},
                "scrape_configs": [{"job_name": "app", "static_configs": [{"targets": hosts}]}],
            }
        )
    )
    listen = f"{PROMETHEUS}:{PROMETHEUS_PORT}"
    log = (home / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address={listen}",
            "--storage.tsdb.retention.time=1h",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_ready(f"http://{listen}/-/ready", 30)
        yield f"http://{listen}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        log.close()


@pytest.fixture
def app(targets) -> Iterator[Callable[..., None]]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(project: str, hosts: list[FleetHost]) -> None:
        for host in hosts:
            counts = {"ok": 0.0, "err": 0.0, "fast": 0.0, "slow": 0.0, "sum": 0.0}
            handler = type("A", (_App,), {"host": host, "project": project, "counts": counts})
            server = http.server.ThreadingHTTPServer((host.address, APP_PORT), handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            servers.append(server)

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def allowed(db, settings):
    """This server allows its outbound requests into the tests' loopback range (a
    superuser's FERRYMAN_OUTBOUND_ALLOW), both where projects are applied and in workers."""
    allow_outbound(db, LOOPBACK_NET)
    return replace(settings, outbound_allow=LOOPBACK_NET)


def _analysis(url: str, failure_limit: int = 1, duration: str = "3s") -> dict:
    return {
        "prometheus": url,
        "interval": "1s",
        "duration": duration,
        "metrics": [
            {
                "name": "error-rate",
                "query": ERROR_RATE,
                "compare": "canary <= baseline * 1.5 + 0.001",
            },
            {"name": "p99", "query": P99, "compare": "canary <= baseline * 1.2"},
        ],
        "failure_limit": failure_limit,
    }


def _setup(db, git_host, hosts, tmp_path: Path, url: str, **analysis_keys) -> tuple[Repo, dict]:
    repo = Repo(git_host, tmp_path, unique("canary"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    config = project_config(repo.name, repo.url, hosts)
    apply(db, config)  # v1 everywhere, the plain way
    config["environments"]["production"]["strategy"] = {
        "canary": 1,
        "batches": 1,
        "pause": "none",
        "analysis": _analysis(url, **analysis_keys),
    }
    return repo, config


def _wait_scraped(prometheus: str, hosts: list[FleetHost], seconds: float = 20) -> None:
    """Until Prometheus holds a few seconds of every host's counters (rates need them)."""
    deadline = time.monotonic() + seconds
    wanted = {f"{h.address}:{APP_PORT}" for h in hosts}
    query = "count_over_time(http_requests_total{code='200'}[10s]) >= 3"
    while time.monotonic() < deadline:
        answer = httpx.get(
            f"{prometheus}/api/v1/query", params={"query": query}, timeout=2, trust_env=False
        ).json()
        found = {r["metric"]["instance"] for r in answer["data"]["result"]}
        if wanted <= found:
            return
        time.sleep(0.5)
    raise TimeoutError(f"Prometheus has not scraped {sorted(wanted)} yet")


def _lines(db, deploy_id: int) -> list[str]:
    return [
        line["text"]
        for line in deploy_views.logs_after(db, deploy_id, limit=5000)
        if line["stage"] == "analysis"
    ]


def test_a_healthy_canary_passes_its_analysis_and_the_rollout_goes_on(
    db, allowed, git_host, targets, tmp_path, prometheus, app
):
    hosts = targets[:3]
    repo, config = _setup(db, git_host, hosts, tmp_path, prometheus)
    assert deploy(db, allowed, repo.name, "v1")["status"] == "success"
    apply(db, config)
    app(repo.name, hosts)
    _wait_scraped(prometheus, hosts)
    repo.commit({"index.html": "v2\n"}, tag="v2")
    done = deploy(db, allowed, repo.name, "v2")
    assert done["status"] == "success", done["error"]
    assert {read_live(h, repo.name, "index.html") for h in hosts} == {"v2\n"}
    shown = analysis.of_deploy(db, ADMIN, done["id"])
    verdicts = [(m["interval"], m["metric"], m["verdict"]) for m in shown["measurements"]]
    assert sorted(verdicts) == [
        (i, name, "pass") for i in (1, 2, 3) for name in ("error-rate", "p99")
    ], shown
    assert all(m["canary"] is not None and m["baseline"] is not None for m in shown["measurements"])
    assert [m["name"] for m in shown["metrics"]] == ["error-rate", "p99"]
    lines = _lines(db, done["id"])
    per_interval = [line for line in lines if line.startswith("analysis ") and "/3: " in line]
    assert len(per_interval) == 3, lines  # one line per interval in the console
    assert "error-rate canary=" in per_interval[0] and "baseline=" in per_interval[0]
    assert any(line.startswith("analysis passed") for line in lines), lines
    stage = next(s for s in done["stages"] if s["name"] == "analysis")
    assert (stage["total"], stage["done"], stage["failed"]) == (1, 1, 0), stage


def test_a_degraded_canary_fails_its_analysis_and_is_rolled_back(
    db, allowed, git_host, targets, tmp_path, prometheus, app
):
    hosts = targets[:3]
    repo, config = _setup(db, git_host, hosts, tmp_path, prometheus, duration="6s")
    assert deploy(db, allowed, repo.name, "v1")["status"] == "success"
    apply(db, config)
    app(repo.name, hosts)
    _wait_scraped(prometheus, hosts)
    before = {h.address: live(h, repo.name) for h in hosts}
    repo.commit({"index.html": "v2\n", "degrade.txt": "yes\n"}, tag="v2")
    failed = deploy(db, allowed, repo.name, "v2")
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "rollout_failed"
    assert failed["error"]["details"]["stage"] == "analysis"
    assert failed["error"]["details"]["host"] == hosts[0].address  # the canary
    assert "failed its analysis" in failed["error"]["message"]
    assert {h.address: live(h, repo.name) for h in hosts} == before  # every host on v1
    assert failed["rollout"]["state"] == "aborted"
    stage = next(s for s in failed["stages"] if s["name"] == "analysis")
    assert (stage["total"], stage["failed"]) == (1, 1), stage
    shown = analysis.of_deploy(db, ADMIN, failed["id"])
    fails = [m for m in shown["measurements"] if m["verdict"] == "fail"]
    assert fails and max(m["interval"] for m in shown["measurements"]) <= 3  # stopped early
    assert any(m["canary"] > m["baseline"] for m in fails)
    with db.read() as s:
        project_id = projects.find_project(s, ADMIN, repo.name, "project.read").id
    assert rollouts.bad_releases(db, project_id, "production") == {failed["release"]}


def test_a_prometheus_that_cannot_be_reached_pauses_the_rollout_and_a_person_decides(
    db, allowed, settings, git_host, targets, tmp_path, app
):
    hosts = targets[:3]
    repo, config = _setup(db, git_host, hosts, tmp_path, f"http://{NOTHING}:{PROMETHEUS_PORT}")
    assert deploy(db, allowed, repo.name, "v1")["status"] == "success"
    apply(db, config)
    repo.commit({"index.html": "v2\n"}, tag="v2")
    requested = deploy(db, allowed, repo.name, "v2")
    assert requested["status"] == "paused"  # fails safe: never continues unjudged
    assert "could not be judged" in requested["rollout"]["pause_reason"]
    assert "cannot be reached" in requested["rollout"]["pause_reason"]
    assert read_live(hosts[0], repo.name, "index.html") == "v2\n"
    assert {read_live(h, repo.name, "index.html") for h in hosts[1:]} == {"v1\n"}
    so_far = analysis.of_deploy(db, ADMIN, requested["id"])  # what a pause shows
    assert [(m["interval"], m["verdict"]) for m in so_far["measurements"]] == [
        (1, "error"),
        (1, "error"),
    ]
    rollouts.request(db, ADMIN, requested["id"], "abort")
    aborted = finish(db, allowed, requested["id"])
    assert aborted["status"] == "failed"
    assert {read_live(h, repo.name, "index.html") for h in hosts} == {"v1\n"}


def test_a_prometheus_address_the_outbound_policy_refuses_is_refused_at_apply_and_pauses(
    db, settings, git_host, targets, tmp_path, prometheus
):
    hosts = targets[:2]
    repo = Repo(git_host, tmp_path, unique("canary"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    config = project_config(repo.name, repo.url, hosts)
    apply(db, config)
    assert deploy(db, settings, repo.name, "v1")["status"] == "success"
    config["environments"]["production"]["strategy"] = {
        "canary": 1,
        "analysis": _analysis(prometheus),
    }
    allow_outbound(db, ())  # this server allows no internal destination
    with pytest.raises(ConfigError) as refused:
        apply(db, config)
    assert [e for e in refused.value.errors if "loopback" in e] == [
        f"environments/production/strategy/analysis/prometheus: {PROMETHEUS}, a loopback "
        "address; internal destinations are refused unless a superuser allows them "
        "(FERRYMAN_OUTBOUND_ALLOW)"
    ]
    # applied where it was allowed, then run by a worker that does not allow it: paused
    allow_outbound(db, LOOPBACK_NET)
    apply(db, config)
    repo.commit({"index.html": "v2\n"}, tag="v2")
    paused = deploy(db, settings, repo.name, "v2")
    assert paused["status"] == "paused"
    assert "internal destinations are refused" in paused["rollout"]["pause_reason"]
    assert read_live(hosts[1], repo.name, "index.html") == "v1\n"
    # a person who judged the canary themselves continues: the rollout goes on to the end
    rollouts.request(db, ADMIN, paused["id"], "continue")
    done = finish(db, settings, paused["id"])
    assert done["status"] == "success", done["error"]
    assert {read_live(h, repo.name, "index.html") for h in hosts} == {"v2\n"}


class _Hostile(http.server.BaseHTTPRequestHandler):
    """A 'Prometheus' answering 8 MiB of JSON."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        try:
            self.wfile.write(b'{"status":"success","data":{"resultType":"vector","result":[')
            for _ in range(8 * 1024):
                self.wfile.write(b" " * 1024)
        except OSError:
            pass

    def log_message(self, *args: object) -> None:
        return


def test_a_prometheus_answering_a_huge_answer_pauses_the_rollout(
    db, allowed, git_host, targets, tmp_path
):
    server = http.server.ThreadingHTTPServer((HOSTILE, PROMETHEUS_PORT), _Hostile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hosts = targets[:2]
        repo, config = _setup(db, git_host, hosts, tmp_path, f"http://{HOSTILE}:{PROMETHEUS_PORT}")
        assert deploy(db, allowed, repo.name, "v1")["status"] == "success"
        apply(db, config)
        repo.commit({"index.html": "v2\n"}, tag="v2")
        paused = deploy(db, allowed, repo.name, "v2")
    finally:
        server.shutdown()
        server.server_close()
    assert paused["status"] == "paused"
    assert "larger than" in paused["rollout"]["pause_reason"]
    assert read_live(hosts[1], repo.name, "index.html") == "v1\n"
