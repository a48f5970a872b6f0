"""Back up while a deploy runs, restore into a new home, and the restored server puts the
fleet back: it takes the deploy the backup caught running over (its worker is gone), undoes
it on every host, then deploys and rolls back with the restored keys."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.helpers import Repo, project_config, read_live, release_dirs, unique
from tests.ops.servers import Process, cli
from tests.ops.test_first_run import fresh_home

pytestmark = pytest.mark.fleet
PASSWORD = "correct horse battery"
# a build that takes a while when the commit asks for it (the deploy the backup catches)
BUILD = "if [ -f slow ]; then sleep 8; fi\n"


def _api(url: str) -> httpx.Client:
    token = httpx.post(
        url + "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}, timeout=30
    ).json()["token"]
    return httpx.Client(base_url=url + "/api/v1", headers={"Authorization": f"Bearer {token}"})


def _wait(api: httpx.Client, deploy_id: int, until, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        deploy: dict[str, Any] = api.get(f"/deploys/{deploy_id}", timeout=30).json()
        if until(deploy):
            return deploy
        assert time.monotonic() < deadline, deploy
        time.sleep(0.3)


def test_a_backup_taken_during_a_deploy_restores_to_a_server_that_rolls_the_fleet_back(
    fleet, git_host, targets, tmp_path: Path
):
    home = fresh_home(tmp_path, fleet)
    repo = Repo(git_host, tmp_path, unique("backup"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    project = tmp_path / "project.yaml"
    project.write_text(
        yaml.safe_dump(project_config(repo.name, repo.url, targets, tasks={"post_deploy": BUILD}))
    )
    env: dict[str, Any] = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "FERRYMAN_LOCK_LEASE": "6"}
    with Process(home, tmp_path / "a.log", **env) as first:
        cli(home, "admin", "create-user", "alice", "--password", PASSWORD, "--superuser", **env)
        cli(
            home,
            "login",
            "--server",
            first.url,
            "--username",
            "alice",
            "--password",
            PASSWORD,
            **env,
        )
        cli(home, "env", "set", "production", "--no-approval", **env)
        cli(home, "apply", "-f", str(project), **env)
        cli(home, "deploy", repo.name, "--env", "production", "--ref", "v1", "--wait", **env)
        v1 = {h.name: read_live(h, repo.name, "index.html") for h in targets}
        assert set(v1.values()) == {"v1\n"}

        repo.commit({"index.html": "v2\n", "slow": "yes\n"}, tag="v2")
        queued = cli(home, "deploy", repo.name, "--env", "production", "--ref", "v2", **env)
        running = int(queued.stdout.split("#", 1)[1].split()[0])
        with _api(first.url) as api:
            _wait(
                api,
                running,
                lambda d: any(
                    s["name"] == "post_deploy" and s["status"] == "running" for s in d["stages"]
                ),
            )
            made = cli(home, "backup", "-o", str(tmp_path / "during.tgz"), **env)
            assert "backup written" in made.stdout
            assert _wait(api, running, lambda d: d["status"] != "running")["status"] == "success"
        assert {read_live(h, repo.name, "index.html") for h in targets} == {"v2\n"}

    # the first server is gone; its backup comes up elsewhere
    restored = tmp_path / "restored"
    cli(
        restored,
        "restore",
        str(tmp_path / "during.tgz"),
        "--secret-key",
        str(tmp_path / "during.tgz.key"),
        **env,
    )
    env_b: dict[str, Any] = {**env, "XDG_CONFIG_HOME": str(tmp_path / "cfg-b")}
    with Process(restored, tmp_path / "b.log", **env_b) as second, _api(second.url) as api:
        # the backup caught deploy v2 running on a worker that no longer exists: taken over
        # and undone, every host back on v1
        ended = _wait(api, running, lambda d: d["status"] != "running", timeout=180)
        assert ended["status"] == "failed"
        assert ended["error"]["code"] == "worker_lost"
        assert {h.name: read_live(h, repo.name, "index.html") for h in targets} == v1
        assert all(not any("v2" in r for r in release_dirs(h, repo.name)) for h in targets)

        # the restored keys reach the fleet: a new deploy, then a rollback
        cli(
            restored,
            "login",
            "--server",
            second.url,
            "--username",
            "alice",
            "--password",
            PASSWORD,
            **env_b,
        )
        repo.commit({"index.html": "v3\n", "slow": None}, tag="v3")
        cli(restored, "deploy", repo.name, "--env", "production", "--ref", "v3", "--wait", **env_b)
        assert {read_live(h, repo.name, "index.html") for h in targets} == {"v3\n"}
        back = cli(restored, "rollback", repo.name, "--env", "production", "--wait", **env_b)
        assert "succeeded" in back.stdout
        assert {read_live(h, repo.name, "index.html") for h in targets} == {"v1\n"}
    assert "taken_over" in second.output() or "takes it over" in second.output()
