"""The everyday commands: what would `apply` change, which deploys ran, one deploy — and the
output of each read whole through a pipe, never wrapped or cut at 80 columns."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.helpers import Repo, project_config, unique

pytestmark = pytest.mark.fleet


def test_apply_dry_run_deploys_and_deploy_show(cli, signed_in, git_host, targets, tmp_path):
    signed_in("alice")
    a = {"user": "alice"}
    cli("env", "set", "production", "--no-approval", **a)
    name = unique("everyday-with-a-name-long-enough-to-be-cut")
    repo = Repo(git_host, tmp_path, name)
    repo.commit({"index.html": "v1\n"}, tag="v1")
    config = tmp_path / "project.yaml"
    config.write_text(yaml.safe_dump(project_config(repo.name, repo.url, targets)))

    planned = cli("apply", "-f", str(config), "--dry-run", **a).stdout
    assert planned.startswith(f"would create project default:{repo.name} ")
    assert cli.json("projects", schema="list[Project]", **a) == []  # nothing written
    cli("apply", "-f", str(config), **a)
    same = cli("apply", "-f", str(config), "--dry-run", **a)
    assert same.stdout == f"project default:{repo.name}: unchanged\n"

    changed = project_config(repo.name, repo.url, targets, keep_releases=3, task_timeout=90)
    config.write_text(yaml.safe_dump(changed))
    plan = cli.json("apply", "-f", str(config), "--dry-run", schema="ApplyPlan", **a)
    assert plan["created"] is False
    assert {c["path"]: (c["before"], c["after"]) for c in plan["changes"]} == {
        "environments/production/keep_releases": (5, 3),
        "environments/production/task_timeout": (60.0, 90.0),
    }
    shown = cli("apply", "-f", str(config), "--dry-run", **a).stdout.splitlines()
    assert "  ~ environments/production/keep_releases: 5 → 3" in shown
    # still the old configuration: the dry run wrote nothing
    assert (
        len(cli.json("apply", "-f", str(config), "--dry-run", schema="ApplyPlan", **a)["changes"])
        == 2
    )

    first = cli.json(
        "deploy", repo.name, "--env", "production", "--ref", "v1", "--wait", schema="Deploy", **a
    )
    listed = cli.json("deploys", "--project", repo.name, schema="list[Deploy]", **a)
    assert [d["id"] for d in listed] == [first["id"]]
    assert cli.json("deploys", "--status", "failed", schema="list[Deploy]", **a) == []
    assert cli.json("deploys", "--env", "staging", schema="list[Deploy]", **a) == []
    mine = cli.json("deploys", "--user", "alice", "--status", "success", schema="list[Deploy]", **a)
    assert [d["id"] for d in mine] == [first["id"]]

    one = cli.json("deploy", "show", str(first["id"]), schema="Deploy", **a)
    assert one["status"] == "success" and len(one["hosts"]) == len(targets)
    text = cli("deploy", "show", str(first["id"]), **a).stdout
    assert first["release"] in text and all(h.address in text for h in targets)

    # through a pipe, a table row holds whole cells however wide: the long name, the time
    table = cli("deploys", **a).stdout
    row = next(line for line in table.splitlines() if f" {first['id']} " in line)
    assert repo.name in row and first["created_at"] in row
    assert "…" not in table
    assert any(len(line) > 80 for line in table.splitlines())
    assert json.loads(cli("deploys", "--json", **a).stdout)[0]["project"] == repo.name
