"""Upgrading: the code of the previous schema (this repository before its newest migration)
makes a real install — a user, a token, a project, a deploy on the fleet — then this version
migrates that database and deploys and rolls back on it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from alembic.config import Config
from alembic.script import ScriptDirectory

from ferryman.db.session import MIGRATIONS
from tests.helpers import Repo, project_config, read_live, unique
from tests.ops.servers import Process, cli
from tests.ops.test_first_run import fresh_home

pytestmark = pytest.mark.fleet
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
MAIN = "import sys; from ferryman.cli.main import main; sys.argv[0] = 'ferryman'; main()"


def head(migrations: Path) -> str:
    """The revision a tree of migrations ends at (its numbers need not be in chain order:
    migrations written side by side are chained in the order they landed)."""
    config = Config()
    config.set_main_option("script_location", str(migrations))
    found = ScriptDirectory.from_config(config).get_current_head()
    assert found is not None
    return found


def previous_schema_code(scratch: Path) -> tuple[Path, str]:
    """The package source as it was just before the newest migration was added (from git),
    and the revision it creates."""
    newest = next(MIGRATIONS.joinpath("versions").glob(f"{head(MIGRATIONS)}_*.py"))
    added = subprocess.run(
        [
            "git",
            "-C",
            str(ROOT),
            "log",
            "--diff-filter=A",
            "--format=%H",
            "--",
            str(newest.relative_to(ROOT)),
        ],
        capture_output=True,
        text=True,
    ).stdout.split()
    if not added:
        pytest.skip("needs the repository's git history (a clone, not an export)")
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", f"{added[-1]}^", "src"],
        capture_output=True,
    )
    if archive.returncode != 0:
        pytest.skip("the commit before the newest migration is not in this clone")
    old = scratch / "previous"
    old.mkdir()
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
    return old / "src", head(old / "src/ferryman/db/migrations")


def test_a_database_made_by_the_previous_schema_upgrades_and_then_deploys_and_rolls_back(
    fleet, git_host, targets, tmp_path
):
    old_src, old_revision = previous_schema_code(tmp_path)
    newest = head(MIGRATIONS)
    assert old_revision != newest
    home = fresh_home(tmp_path, fleet)
    repo = Repo(git_host, tmp_path, unique("upgrade"))
    repo.commit({"index.html": "made before the upgrade\n"}, tag="v1")
    project = tmp_path / "project.yaml"
    project.write_text(yaml.safe_dump(project_config(repo.name, repo.url, targets)))
    env: dict[str, Any] = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    old: dict[str, Any] = {**env, "PYTHONPATH": str(old_src)}
    previous = (sys.executable, "-c", MAIN)

    with Process(home, tmp_path / "old.log", exe=previous, **old) as server:
        made = cli(home, "migrate", exe=previous, **old)
        assert made.returncode == 0
        cli(
            home,
            "admin",
            "create-user",
            "alice",
            "--password",
            PASSWORD,
            "--superuser",
            exe=previous,
            **old,
        )
        cli(
            home,
            "login",
            "--server",
            server.url,
            "--username",
            "alice",
            "--password",
            PASSWORD,
            exe=previous,
            **old,
        )
        cli(home, "env", "set", "production", "--no-approval", exe=previous, **old)
        cli(home, "apply", "-f", str(project), exe=previous, **old)
        cli(
            home,
            "deploy",
            repo.name,
            "--env",
            "production",
            "--ref",
            "v1",
            "--wait",
            exe=previous,
            **old,
        )
        port = server.port
    assert {read_live(h, repo.name, "index.html") for h in targets} == {"made before the upgrade\n"}
    import sqlite3

    with sqlite3.connect(home / "ferryman.db") as raw:
        assert raw.execute("SELECT version_num FROM alembic_version").fetchone()[0] == old_revision

    # this version: migrate, start on the same address (the stored login still points there)
    said = cli(home, "migrate", **env)
    assert "up to date" in said.stderr + said.stdout
    with sqlite3.connect(home / "ferryman.db") as raw:
        assert raw.execute("SELECT version_num FROM alembic_version").fetchone()[0] == newest
    with Process(home, tmp_path / "new.log", port=port, **env):
        repo.commit({"index.html": "after the upgrade\n"}, tag="v2")
        cli(home, "deploy", repo.name, "--env", "production", "--ref", "v2", "--wait", **env)
        assert {read_live(h, repo.name, "index.html") for h in targets} == {"after the upgrade\n"}
        back = cli(home, "rollback", repo.name, "--env", "production", "--wait", **env)
        assert "succeeded" in back.stdout  # to the release the previous version made
        assert {read_live(h, repo.name, "index.html") for h in targets} == {
            "made before the upgrade\n"
        }
