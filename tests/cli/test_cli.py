"""The CLI against a real `ferryman serve` (embedded worker) and the real fleet."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import Repo, project_config, read_live, running_server, unique

pytestmark = pytest.mark.fleet


@pytest.fixture
def server(settings, tmp_path: Path):
    env = {
        **os.environ,
        "FERRYMAN_HOME": str(settings.home),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    env.pop("FERRYMAN_URL", None)
    env.pop("FERRYMAN_TOKEN", None)
    exe = shutil.which("ferryman", path=os.path.dirname(sys.executable)) or "ferryman"

    def cli(*args: str, check: bool = True, user: str = "") -> subprocess.CompletedProcess[str]:
        """Run ``ferryman ARGS``; ``user`` picks a separate credentials file (one per user)."""
        run_env = {**env, "XDG_CONFIG_HOME": str(tmp_path / "config" / user)} if user else env
        result = subprocess.run(
            [exe, *args], env=run_env, capture_output=True, text=True, timeout=120
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    with running_server(settings.home, {"XDG_CONFIG_HOME": env["XDG_CONFIG_HOME"]}) as url:
        yield url, cli


def test_a_team_deploys_checks_rolls_back_and_reads_logs_from_the_cli(
    server, git_host, targets, tmp_path
):
    url, cli = server
    cli("admin", "create-user", "alice", "--password", "correct horse battery", "--superuser")
    cli("login", "--server", url, "--username", "alice", "--password", "correct horse battery")
    assert "needs no approval" in cli("env", "set", "production", "--no-approval").stdout
    repo = Repo(git_host, tmp_path, unique("cli"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    config = tmp_path / "project.yaml"
    import yaml

    config.write_text(yaml.safe_dump(project_config(repo.name, repo.url, targets)))
    assert "created project" in cli("apply", "-f", str(config)).stdout
    assert "updated project" in cli("apply", "-f", str(config)).stdout
    assert repo.name in cli("projects").stdout

    checked = cli("check", repo.name, "--env", "production").stdout
    assert checked.count("ok  ") >= 5 * len(targets) and "FAIL" not in checked

    first = cli("deploy", repo.name, "--env", "production", "--ref", "v1", "--wait")
    assert "succeeded" in first.stdout
    repo.commit({"index.html": "v2\n"}, tag="v2")
    cli("deploy", repo.name, "--env", "production", "--ref", "v2", "--wait")
    assert {read_live(h, repo.name, "index.html") for h in targets} == {"v2\n"}

    data = json.loads(cli("releases", repo.name, "--env", "production", "--json").stdout)
    assert len(data["hosts"]) == len(targets)
    assert all(len(h["releases"]) == 2 for h in data["hosts"])

    back = cli("rollback", repo.name, "--env", "production", "--wait")
    assert "rollback" in back.stdout and "succeeded" in back.stdout
    assert {read_live(h, repo.name, "index.html") for h in targets} == {"v1\n"}

    deploy_id = back.stdout.split("#")[1].split()[0]
    assert "switch" in cli("logs", deploy_id).stdout
    assert "succeeded" in cli("logs", deploy_id, "--follow").stdout


def test_the_cli_exits_1_on_a_failed_deploy_and_2_on_bad_input(server, git_host, targets, tmp_path):
    url, cli = server
    cli("admin", "create-user", "bob", "--password", "correct horse battery")
    cli("admin", "add-member", "default", "bob", "--role", "master")
    cli("login", "--server", url, "--username", "bob", "--password", "correct horse battery")
    cli("env", "set", "production", "--no-approval")
    repo = Repo(git_host, tmp_path, unique("clifail"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    import yaml

    config = tmp_path / "project.yaml"
    config.write_text(
        yaml.safe_dump(
            project_config(repo.name, repo.url, targets, tasks={"pre_release": "exit 3\n"})
        )
    )
    cli("apply", "-f", str(config))
    failed = cli("deploy", repo.name, "--env", "production", "--ref", "v1", "--wait", check=False)
    assert failed.returncode == 1
    assert "failed" in failed.stdout

    marker = tmp_path / "marker"
    bad = cli(
        "deploy", repo.name, "--env", "production", "--ref", f"$(touch {marker})", check=False
    )
    assert bad.returncode == 2
    assert "invalid ref" in bad.stderr
    assert not marker.exists()

    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "project: x\nrepo: ssh://h/r.git\nenvironments:\n  prod:\n"
        "    hosts: ['-oProxyCommand=touch /tmp/x']\n    webroot: /a/b\n"
        "    releases: /a/c\n"
    )
    result = cli("apply", "-f", str(broken), check=False)
    assert result.returncode == 2
    assert "environments/prod/hosts/0: not a host" in result.stderr
    assert cli("deploy", "nope", "--env", "x", "--ref", "v1", check=False).returncode == 2


def test_a_ticket_goes_from_developer_through_a_master_to_the_fleet_from_the_cli(
    server, git_host, targets, tmp_path
):
    url, cli = server
    password = "correct horse battery"
    cli("admin", "create-user", "alice", "--password", password, "--superuser")
    cli("login", "--server", url, "--username", "alice", "--password", password)
    for name, role in (("dev", "developer"), ("lead", "master")):
        cli("user", "create", name, "--password", password)
        cli("space", "add-member", "default", name, "--role", role)
        cli("login", "--server", url, "--username", name, "--password", password, user=name)
    repo = Repo(git_host, tmp_path, unique("clitk"))
    repo.commit({"index.html": "v1\n"}, message="first", tag="v1")
    import yaml

    config = tmp_path / "project.yaml"
    config.write_text(yaml.safe_dump(project_config(repo.name, repo.url, targets)))
    cli("apply", "-f", str(config))
    assert (
        "approval"
        in cli(
            "deploy", repo.name, "--env", "production", "--ref", "v1", check=False, user="dev"
        ).stderr
    )

    created = cli(
        "ticket",
        "create",
        repo.name,
        "--env",
        "production",
        "--ref",
        "v1",
        "--title",
        "first",
        user="dev",
    )
    assert "pending_approval" in created.stdout
    ticket_id = created.stdout.split("#")[1].split()[0]
    preview = cli("ticket", "show", ticket_id, "--preview", user="lead").stdout
    assert "index.html" in preview and "first" in preview
    own = cli("ticket", "approve", ticket_id, check=False, user="dev")
    assert own.returncode == 2
    assert "approved" in cli("ticket", "approve", ticket_id, "--comment", "ok", user="lead").stdout
    shipped = cli("ticket", "deploy", ticket_id, "--wait", user="dev")
    assert "succeeded" in shipped.stdout
    assert {read_live(h, repo.name, "index.html") for h in targets} == {"v1\n"}
    listed = json.loads(cli("ticket", "list", "--json", user="dev").stdout)
    assert listed[0]["status"] == "succeeded"
    audit = cli("audit", "--space", "default", "--action", "ticket.", user="lead").stdout
    assert "ticket.approve" in audit and "ticket.deploy" in audit
    assert json.loads(cli("stats", "--json", user="lead").stdout)["total"]["successes"] == 1


def test_config_files_and_a_config_only_ticket_from_the_cli(server, git_host, targets, tmp_path):
    url, cli = server
    password = "correct horse battery"
    cli("admin", "create-user", "alice", "--password", password, "--superuser")
    cli("login", "--server", url, "--username", "alice", "--password", password)
    for name, role in (("dev", "developer"), ("lead", "master")):
        cli("user", "create", name, "--password", password)
        cli("space", "add-member", "default", name, "--role", role)
        cli("login", "--server", url, "--username", name, "--password", password, user=name)
    repo = Repo(git_host, tmp_path, unique("clicfg"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    import yaml

    project = project_config(repo.name, repo.url, targets[:2], config_files=["app.env"])
    (tmp_path / "project.yaml").write_text(yaml.safe_dump(project))
    cli("apply", "-f", str(tmp_path / "project.yaml"))
    template = tmp_path / "app.env"
    template.write_text("TOKEN=${API_TOKEN}\nHOST=${HOST}\n")
    denied = cli(
        "config",
        "set",
        repo.name,
        "app.env",
        "--env",
        "production",
        "--file",
        str(template),
        check=False,
        user="dev",
    )
    assert denied.returncode == 2 and "master role" in denied.stderr
    made = cli(
        "config",
        "set",
        repo.name,
        "app.env",
        "--env",
        "production",
        "--file",
        str(template),
        user="lead",
    )
    assert "version 1" in made.stdout
    cli(
        "config",
        "set",
        repo.name,
        "app.env",
        "--env",
        "production",
        "--host",
        targets[1].address,
        "--set",
        "HOST=special",
        user="lead",
    )
    cli(
        "secret",
        "set",
        repo.name,
        "API_TOKEN",
        "--env",
        "production",
        "--value",
        "tok-123456",
        user="lead",
    )
    listed = cli("config", "show", repo.name, "--env", "production", user="dev").stdout
    assert "app.env" in listed and "0600" in listed
    shown = cli(
        "config",
        "show",
        repo.name,
        "app.env",
        "--env",
        "production",
        "--host",
        targets[1].address,
        user="dev",
    ).stdout
    assert "TOKEN=***" in shown and "HOST=special" in shown and "tok-123456" not in shown
    history = json.loads(
        cli(
            "config", "history", repo.name, "app.env", "--env", "production", "--json", user="dev"
        ).stdout
    )
    assert [h["change"] for h in history] == [
        f"override host:{targets[1].address}: keys HOST",
        "created",
    ]
    diff = cli(
        "config",
        "history",
        repo.name,
        "app.env",
        "--env",
        "production",
        "--diff",
        "last",
        user="dev",
    ).stdout
    assert f"+# override host:{targets[1].address}" in diff

    first = cli(
        "ticket",
        "create",
        repo.name,
        "--env",
        "production",
        "--ref",
        "v1",
        "--title",
        "first",
        user="dev",
    ).stdout
    first_id = first.split("#")[1].split()[0]
    cli("ticket", "approve", first_id, user="lead")
    assert "succeeded" in cli("ticket", "deploy", first_id, "--wait", user="dev").stdout
    assert read_live(targets[0], repo.name, "app.env") == (
        f"TOKEN=tok-123456\nHOST={targets[0].address}\n"
    )
    assert read_live(targets[1], repo.name, "app.env") == "TOKEN=tok-123456\nHOST=special\n"

    template.write_text("TOKEN=${API_TOKEN}\nHOST=${HOST}\nMODE=fast\n")
    cli(
        "config",
        "set",
        repo.name,
        "app.env",
        "--env",
        "production",
        "--file",
        str(template),
        user="lead",
    )
    direct = cli(
        "deploy", repo.name, "--env", "production", "--config-only", check=False, user="dev"
    )
    assert direct.returncode == 2 and "requires approval" in direct.stderr
    made = cli(
        "ticket",
        "create",
        repo.name,
        "--env",
        "production",
        "--config-only",
        "--title",
        "faster",
        user="dev",
    ).stdout
    assert "pending_approval: config" in made
    ticket_id = made.split("#")[1].split()[0]
    preview = cli("ticket", "show", ticket_id, "--preview", user="lead").stdout
    assert "config app.env: v2 → v3 (changes)" in preview
    cli("ticket", "approve", ticket_id, user="lead")
    assert "succeeded" in cli("ticket", "deploy", ticket_id, "--wait", user="dev").stdout
    assert read_live(targets[0], repo.name, "app.env").endswith("MODE=fast\n")
    assert read_live(targets[0], repo.name, "index.html") == "v1\n"
    both = cli(
        "deploy",
        repo.name,
        "--env",
        "production",
        "--config-only",
        "--ref",
        "v1",
        check=False,
        user="dev",
    )
    assert both.returncode == 2
