"""``--wait`` as a CI job sees it: a gray release that pauses has its own exit status (3), and
Ctrl-C stops the watching, never the deploy, saying how to follow or cancel it."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
import yaml

from ferryman.cli import exits
from tests.cli.contract import EXE
from tests.helpers import Repo, project_config, read_live, unique

pytestmark = pytest.mark.fleet


def _project(cli, git_host, targets, tmp_path, **env):
    repo = Repo(git_host, tmp_path, unique("wait"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    config = tmp_path / "project.yaml"
    config.write_text(yaml.safe_dump(project_config(repo.name, repo.url, targets, **env)))
    cli("apply", "-f", str(config), user="alice")
    return repo


def test_a_paused_gray_release_exits_3_and_continues_to_0(
    cli, signed_in, git_host, targets, tmp_path
):
    signed_in("alice")
    cli("env", "set", "production", "--no-approval", user="alice")
    strategy = {"canary": 1, "batches": "100%", "pause": "manual"}
    repo = _project(cli, git_host, targets, tmp_path, strategy=strategy)

    paused = cli.json(
        "deploy",
        repo.name,
        "--env",
        "production",
        "--ref",
        "v1",
        "--wait",
        schema="Deploy",
        code=exits.PAUSED,
        user="alice",
    )
    assert paused["status"] == "paused"
    said = cli("deploy", "show", str(paused["id"]), user="alice")
    assert "paused" in said.stdout
    text = cli("rollout", "continue", str(paused["id"]), "--wait", check=False, user="alice")
    assert text.returncode == exits.OK, text.stderr
    assert {read_live(h, repo.name, "index.html") for h in targets} == {"v1\n"}


def test_ctrl_c_under_wait_leaves_the_deploy_running_and_says_how_to_follow_it(
    cli, signed_in, git_host, targets, tmp_path
):
    signed_in("alice")
    cli("env", "set", "production", "--no-approval", user="alice")
    repo = _project(cli, git_host, targets, tmp_path, tasks={"post_deploy": "sleep 4\n"})
    env = dict(cli.env, XDG_CONFIG_HOME=str(tmp_path / "config" / "alice"))
    proc = subprocess.Popen(
        [EXE, "deploy", repo.name, "--env", "production", "--ref", "v1", "--wait"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None, "stdout=PIPE gives the process a pipe"
    first = proc.stdout.readline()  # "deploy #N queued": it is following now
    deploy_id = first.split("#")[1].split()[0]
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == exits.INTERRUPTED, (out, err)
    assert f"deploy #{deploy_id} goes on on the server" in err
    for hint in (f"ferryman logs {deploy_id} --follow", f"ferryman cancel {deploy_id}"):
        assert f"`{hint}`" in err
    assert "Traceback" not in err
    followed = cli("logs", deploy_id, "--follow", user="alice")  # the hint works as written
    assert "succeeded" in followed.stdout
