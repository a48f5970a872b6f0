"""``ferryman rollback`` across an irreversible migration, against a real ``ferryman serve`` and
the real fleet: refused in one line naming the migration, then forced with a reason."""

from __future__ import annotations

import yaml

from tests.cli.test_cli import server  # noqa: F401 - the fixture: a real server and the CLI
from tests.helpers import Repo, project_config, read_live, unique
from tests.pipeline.test_migration_rollback import FIRST, MIGRATE, SECOND


def test_the_cli_refuses_a_rollback_across_an_irreversible_migration_until_forced(
    server,  # noqa: F811
    git_host,
    targets,
    tmp_path,
):
    url, cli = server
    cli("admin", "create-user", "alice", "--password", "correct horse battery", "--superuser")
    cli("login", "--server", url, "--username", "alice", "--password", "correct horse battery")
    cli("env", "set", "production", "--no-approval")
    repo = Repo(git_host, tmp_path, unique("climig"))
    repo.commit({"index.html": "v1\n", "migrations.txt": FIRST}, tag="v1")
    config = project_config(repo.name, repo.url, targets[:1])
    env = config["environments"]["production"]
    env["tasks"] = {"post_release": MIGRATE}
    env["migrations"] = {"command": "cat /srv/appdb/{PROJECT}"}
    path = tmp_path / "project.yaml"
    path.write_text(yaml.safe_dump(config))
    cli("apply", "-f", str(path))
    assert (
        "succeeded"
        in cli("deploy", repo.name, "--env", "production", "--ref", "v1", "--wait").stdout
    )
    repo.commit({"index.html": "v2\n", "migrations.txt": SECOND}, tag="v2")
    assert (
        "succeeded"
        in cli("deploy", repo.name, "--env", "production", "--ref", "v2", "--wait").stdout
    )

    shown = cli("releases", repo.name, "--env", "production").stdout
    assert "crosses irreversible migrations" in shown and "20240102_drop_legacy" in shown

    refused = cli("rollback", repo.name, "--env", "production", check=False)
    assert refused.returncode == 1
    assert "20240102_drop_legacy" in refused.stderr and "--force-migrations" in refused.stderr
    no_reason = cli("rollback", repo.name, "--env", "production", "--force-migrations", check=False)
    assert no_reason.returncode == 2 and "reason" in no_reason.stderr
    assert {read_live(h, repo.name, "index.html") for h in targets[:1]} == {"v2\n"}

    forced = cli(
        "rollback",
        repo.name,
        "--env",
        "production",
        "--force-migrations",
        "--reason",
        "legacy table restored",
        "--wait",
    )
    assert "succeeded" in forced.stdout
    assert {read_live(h, repo.name, "index.html") for h in targets[:1]} == {"v1\n"}
