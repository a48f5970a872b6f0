"""A real Prometheus (Debian's) scrapes a real `ferryman serve` that ran deploys on the real
fleet, with the sample scrape config and alert rules of contrib/prometheus; its queries return
the deploys that happened. The server's JSON log has each deploy's lifecycle events."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.helpers import Repo, project_config, unique
from tests.ops.servers import Process, cli, free_port
from tests.ops.test_first_run import fresh_home

pytestmark = pytest.mark.fleet
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "prometheus-scrapes-ferryman-42"
PASSWORD = "correct horse battery"


def _prometheus() -> str:
    found = shutil.which("prometheus") or shutil.which("prometheus", path="/usr/bin")
    if not found:
        pytest.skip("Debian's prometheus is not installed: run scripts/setup-system --test")
    return found


def test_prometheus_scrapes_deploy_counts_stage_durations_and_workers(
    fleet, git_host, targets, tmp_path
):
    prometheus = _prometheus()
    home = fresh_home(tmp_path, fleet)
    good = Repo(git_host, tmp_path, unique("metrics"))
    good.commit({"index.html": "v1\n"}, tag="v1")
    good.commit({"index.html": "v2\n"}, tag="v2")
    bad = Repo(git_host, tmp_path, unique("broken"))
    bad.commit({"index.html": "v1\n"}, tag="v1")
    for repo, extra in ((good, {}), (bad, {"tasks": {"post_deploy": "echo no >&2\nexit 3\n"}})):
        (tmp_path / f"{repo.name}.yaml").write_text(
            yaml.safe_dump(project_config(repo.name, repo.url, targets, **extra))
        )

    env: dict[str, Any] = {
        "FERRYMAN_METRICS_TOKEN": TOKEN,
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
    }
    server = Process(home, tmp_path / "serve.log", args=("--log-format", "json"), **env)
    with server:
        cli(home, "admin", "create-user", "alice", "--password", PASSWORD, "--superuser", **env)
        cli(
            home,
            "login",
            "--server",
            server.url,
            "--username",
            "alice",
            "--password",
            PASSWORD,
            **env,
        )
        cli(home, "env", "set", "production", "--no-approval", **env)
        ids = {}
        for repo, ref in ((good, "v1"), (good, "v2"), (bad, "v1")):
            cli(home, "apply", "-f", str(tmp_path / f"{repo.name}.yaml"), **env)
            done = cli(
                home,
                "deploy",
                repo.name,
                "--env",
                "production",
                "--ref",
                ref,
                "--wait",
                check=False,
                **env,
            )
            assert done.returncode == (1 if repo is bad else 0), done.stdout + done.stderr
            ids[(repo.name, ref)] = int(done.stdout.split("#", 1)[1].split()[0])

        config = yaml.safe_load((ROOT / "contrib" / "prometheus" / "prometheus.yml").read_text())
        (tmp_path / "token").write_text(TOKEN)
        shutil.copy(
            ROOT / "contrib" / "prometheus" / "ferryman-alerts.yml", tmp_path / "alerts.yml"
        )
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        config["rule_files"] = [str(tmp_path / "alerts.yml")]
        job = config["scrape_configs"][0]
        job["authorization"]["credentials_file"] = str(tmp_path / "token")
        job["static_configs"] = [{"targets": [f"127.0.0.1:{server.port}"]}]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        check = subprocess.run(
            ["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stdout + check.stderr

        port = free_port()
        with (tmp_path / "prometheus.log").open("wb") as log:  # Prometheus has it open now
            proc = subprocess.Popen(
                [
                    prometheus,
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        try:
            api = f"http://127.0.0.1:{port}/api/v1/query"

            def query(expr: str) -> list[dict]:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        got = httpx.get(api, params={"query": expr}, timeout=5)
                    except httpx.HTTPError:
                        got = None
                    # a Prometheus still starting answers 503 "Service Unavailable" (not JSON)
                    answer = got.json() if got is not None and got.status_code == 200 else {}
                    if answer.get("status") == "success" and answer["data"]["result"]:
                        return list(answer["data"]["result"])
                    assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
                    assert time.monotonic() < deadline, f"no answer to {expr}"
                    time.sleep(0.5)

            def value(expr: str) -> float:
                return float(query(expr)[0]["value"][1])

            assert value('up{job="ferryman"}') == 1
            assert value(f'ferryman_deploys_total{{project="{good.name}",status="success"}}') == 2
            assert value(f'ferryman_deploys_total{{project="{bad.name}",status="failed"}}') == 1
            assert value('sum(ferryman_deploys_total{env="production"})') == 3
            # every deploy checked out; only the good ones switched
            assert value('ferryman_stage_duration_seconds_count{stage="checkout"}') == 3
            assert value('ferryman_stage_duration_seconds_count{stage="switch"}') == 2
            assert value('ferryman_stage_duration_seconds_bucket{stage="switch",le="+Inf"}') == 2
            assert value("ferryman_workers") == 1
            assert value("ferryman_deploys_running") == 0
            assert value("sum(ferryman_queue_depth)") == 0
            rules = httpx.get(f"http://127.0.0.1:{port}/api/v1/rules", timeout=5).json()
            names = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
            assert {"FerrymanDeployFailureRate", "FerrymanQueueStuck", "FerrymanNoWorker"} <= names
        finally:
            proc.terminate()
            proc.wait(30)

    events = [
        json.loads(line) for line in server.output().splitlines() if '"ferryman.deploys"' in line
    ]
    for deploy_id in ids.values():
        mine = [e["event"] for e in events if e.get("deploy_id") == deploy_id]
        assert mine[:2] == ["queued", "claimed"] and mine[-1] == "finished", events
    good_stages = [
        e
        for e in events
        if e["event"] == "stage_finished" and e["deploy_id"] == ids[(good.name, "v2")]
    ]
    assert {e["stage"] for e in good_stages} >= {"checkout", "transfer", "switch"}
    assert all(e["status"] == "success" and e["duration"] >= 0 for e in good_stages)
    failed = [
        e
        for e in events
        if e["event"] == "stage_finished" and e["deploy_id"] == ids[(bad.name, "v1")]
    ]
    assert ("post_deploy", "failed") in {(e["stage"], e["status"]) for e in failed}
    statuses = {e["deploy_id"]: e["status"] for e in events if e["event"] == "finished"}
    assert statuses[ids[(bad.name, "v1")]] == "failed"
    assert statuses[ids[(good.name, "v2")]] == "success"
