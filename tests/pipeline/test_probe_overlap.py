"""The hosts are probed while the deploy host checks out: nothing waits for the probe but what
needs its facts, and a probe that fails still stops the deploy before any host changes."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ferryman.db.models import Lock
from ferryman.services import deploy_views
from ferryman.testing.fleet import FleetHost
from tests.helpers import Repo, apply, deploy, live, project_config, release_dirs, unique

pytestmark = pytest.mark.fleet


@pytest.fixture
def repo(git_host: FleetHost, tmp_path: Path) -> Repo:
    r = Repo(git_host, tmp_path, unique("overlap"))
    r.commit({"index.html": "v1\n"}, tag="v1")
    return r


def _stage(result: dict, name: str) -> tuple[datetime, datetime]:
    stage = next(s for s in result["stages"] if s["name"] == name)
    start = datetime.fromisoformat(stage["started_at"])
    return start, start + timedelta(seconds=stage["duration"])


def test_the_hosts_are_probed_while_the_deploy_host_builds(db, settings, repo, targets):
    hook = "sleep 1; echo pre > pre.txt\n"
    apply(db, project_config(repo.name, repo.url, targets, tasks={"pre_deploy": hook}))

    result = deploy(db, settings, repo.name, "v1")

    assert result["status"] == "success", result["error"]
    assert [s["name"] for s in result["stages"]][:3] == ["prepare", "pre_deploy", "checkout"]
    prepare_start, prepare_end = _stage(result, "prepare")
    pre_start, pre_end = _stage(result, "pre_deploy")
    assert prepare_start <= pre_start < prepare_end < pre_end  # the probe ran under the hook
    probe = next(s for s in result["stages"] if s["name"] == "prepare")
    assert probe["status"] == "success" and probe["done"] == len(targets)
    assert all(live(h, repo.name) == result["release"] for h in targets)


def test_a_probe_that_fails_while_the_deploy_host_builds_changes_no_host(
    db, settings, repo, targets
):
    real = targets[2].path(f"/srv/www/{repo.name}")
    real.mkdir()
    (real / "precious.html").write_text("keep me\n")
    hook = "sleep 1\n"
    apply(db, project_config(repo.name, repo.url, targets, tasks={"pre_deploy": hook}))

    result = deploy(db, settings, repo.name, "v1")

    assert result["status"] == "failed"
    assert "real directory" in result["error"]["message"]
    assert targets[2].address in result["error"]["message"]
    assert not result["release"]  # never named: the checkout stopped at the probe's failure
    stages = {s["name"]: s["status"] for s in result["stages"]}
    assert stages["prepare"] == "failed" and "transfer" not in stages
    assert (real / "precious.html").read_text() == "keep me\n"
    assert all(live(h, repo.name) is None for h in targets if h is not targets[2])
    assert all(release_dirs(h, repo.name) == [] for h in targets)
    with db.read() as s:
        assert s.query(Lock).count() == 0
    assert not any(settings.workspaces.glob("*/deploy-*"))
    log = [x["text"] for x in deploy_views.logs_after(db, result["id"], 0, 5000)]
    assert not any(line.startswith("v1 is ") for line in log)
