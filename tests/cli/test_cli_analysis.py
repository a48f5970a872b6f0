"""A gray release paused by its canary analysis, as a person at a terminal sees it through
the real CLI against a real ``ferryman serve``: ``rollout show`` says why it paused and
prints the analysis so far, ``rollout analysis --json`` is the API's declared document, and
``rollout abort --wait`` puts the canary back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from ferryman.cli.analysis import lines
from tests.cli.conftest import Cli
from tests.cli.contract import environment
from tests.conftest import NET
from tests.helpers import Repo, live, project_config, read_live, running_server, unique

pytestmark = pytest.mark.fleet
NOTHING = f"{NET}.91:19090"  # nothing listens here: the analysis cannot be judged
QUERY = 'sum(rate(http_requests_total{instance=~"{HOSTS_RE}",code=~"5.."}[1m]))'


@pytest.fixture
def allowing_cli(settings, tmp_path: Path) -> Iterator[Cli]:
    """The CLI against a server whose superuser allows outbound requests into the tests'
    loopback range (``FERRYMAN_OUTBOUND_ALLOW``)."""
    env = environment(tmp_path, FERRYMAN_HOME=str(settings.home))
    extra = {"XDG_CONFIG_HOME": env["XDG_CONFIG_HOME"], "FERRYMAN_OUTBOUND_ALLOW": f"{NET}.0/24"}
    with running_server(settings.home, extra) as url:
        openapi = httpx.get(url + "/openapi.json", timeout=30).json()
        yield Cli(url, env, tmp_path, openapi)


def test_a_rollout_paused_by_its_analysis_shows_why_and_the_analysis_so_far(
    allowing_cli, git_host, targets, tmp_path
):
    cli = allowing_cli
    cli("admin", "create-user", "alice", "--password", "correct horse battery", "--superuser")
    cli(
        "login",
        "--server",
        cli.url,
        "--username",
        "alice",
        "--password",
        "correct horse battery",
        user="alice",
    )
    cli("env", "set", "production", "--no-approval", user="alice")
    hosts = targets[:3]
    repo = Repo(git_host, tmp_path, unique("cana"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    config = project_config(repo.name, repo.url, hosts)
    path = tmp_path / "project.yaml"
    path.write_text(yaml.safe_dump(config))
    cli("apply", "-f", str(path), user="alice")
    cli("deploy", repo.name, "--env", "production", "--ref", "v1", "--wait", user="alice")
    config["environments"]["production"]["strategy"] = {
        "canary": 1,
        "analysis": {
            "prometheus": f"http://{NOTHING}",
            "interval": "1s",
            "duration": "3s",
            "metrics": [{"name": "error-rate", "query": QUERY, "compare": "canary <= baseline"}],
        },
    }
    path.write_text(yaml.safe_dump(config))
    cli("apply", "-f", str(path), user="alice")
    repo.commit({"index.html": "v2\n"}, tag="v2")
    paused = cli.json(
        "deploy",
        repo.name,
        "--env",
        "production",
        "--ref",
        "v2",
        "--wait",
        schema="Deploy",
        code=3,
        user="alice",
    )
    assert paused["status"] == "paused"

    shown = cli("rollout", "show", str(paused["id"]), user="alice").stdout
    assert "paused: analysis interval 1/3 could not be judged" in shown, shown
    assert "analysis:\n  error-rate: canary <= baseline\n" in shown, shown
    assert (
        "interval 1: error-rate canary - baseline - error (canary: Prometheus cannot be reached"
        in shown
    )
    data = cli.json("rollout", "analysis", str(paused["id"]), schema="DeployAnalysis", user="alice")
    assert [(m["interval"], m["metric"], m["verdict"]) for m in data["measurements"]] == [
        (1, "error-rate", "error")
    ]
    assert data["metrics"] == [
        {"name": "error-rate", "query": QUERY, "compare": "canary <= baseline"}
    ]
    assert read_live(hosts[0], repo.name, "index.html") == "v2\n"  # the canary waits on v2

    done = cli("rollout", "abort", str(paused["id"]), "--wait", check=False, user="alice")
    assert done.returncode != 0
    assert {read_live(h, repo.name, "index.html") for h in hosts} == {"v1\n"}
    assert all(live(h, repo.name) for h in hosts)


def test_a_deploy_without_analysis_prints_no_analysis():
    assert lines({"metrics": [], "measurements": []}) == []
    assert lines({"metrics": [{"name": "p99", "compare": "canary < 1"}], "measurements": []}) == [
        "analysis:",
        "  p99: canary < 1",
        "  no interval measured yet",
    ]
