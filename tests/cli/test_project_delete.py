"""`ferryman project delete` against a real server and the fleet: a developer is refused, a
master is asked first (or passes --yes), and the project's releases stay on every host
exactly as they were; its deploy still reads."""

from __future__ import annotations

import pytest
import yaml

from tests.helpers import Repo, live, project_config, read_live, release_dirs, unique

pytestmark = pytest.mark.fleet


def test_a_deleted_project_leaves_its_releases_on_every_host(
    cli, signed_in, git_host, targets, tmp_path
):
    signed_in("mia", "master")
    signed_in("dan", "developer")
    cli("env", "set", "production", "--no-approval", user="mia")
    repo = Repo(git_host, tmp_path, unique("gone"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    config = tmp_path / "project.yaml"
    config.write_text(yaml.safe_dump(project_config(repo.name, repo.url, targets)))
    cli("apply", "-f", str(config), user="mia")
    first = cli.json(
        "deploy",
        repo.name,
        "--env",
        "production",
        "--ref",
        "v1",
        "--wait",
        schema="Deploy",
        user="mia",
    )
    before = {h.name: (live(h, repo.name), release_dirs(h, repo.name)) for h in targets}

    refused = cli("project", "delete", repo.name, "--yes", check=False, user="dan")
    assert refused.returncode != 0 and "master" in refused.stderr.lower() + refused.stdout.lower()
    kept = cli("project", "delete", repo.name, check=False, stdin="n\n", user="mia")
    assert kept.returncode == 1
    names = {p["name"] for p in cli.json("projects", schema="list[Project]", user="mia")}
    assert repo.name in names

    done = cli("project", "delete", repo.name, stdin="y\n", user="mia")
    assert f"deleted project {repo.name}" in done.stdout
    names = {p["name"] for p in cli.json("projects", schema="list[Project]", user="mia")}
    assert repo.name not in names
    after = {h.name: (live(h, repo.name), release_dirs(h, repo.name)) for h in targets}
    assert after == before
    assert {read_live(h, repo.name, "index.html") for h in targets} == {"v1\n"}
    shown = cli.json("deploy", "show", str(first["id"]), schema="Deploy", user="mia")
    assert shown["status"] == "success" and shown["project"].startswith(f"{repo.name}~")
    again = cli("deploy", repo.name, "--env", "production", "--ref", "v1", check=False, user="mia")
    assert again.returncode != 0 and "no project" in again.stderr
