"""A command the CLI suggests runs as written: copied from the message into a shell, it does
what the message says."""

from __future__ import annotations

import re
import shlex

import pytest
import yaml

from tests.helpers import Repo, project_config, unique

pytestmark = pytest.mark.fleet


def suggested(text: str) -> list[list[str]]:
    """Every `ferryman …` command quoted in backticks in ``text``, as argv without the name."""
    return [shlex.split(cmd)[1:] for cmd in re.findall(r"`(ferryman [^`]+)`", text)]


def test_the_approval_refusal_suggests_a_ticket_command_that_works(
    cli, signed_in, git_host, targets, tmp_path
):
    signed_in("alice")
    repo = Repo(git_host, tmp_path, unique("hint"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    config = tmp_path / "project.yaml"
    config.write_text(yaml.safe_dump(project_config(repo.name, repo.url, targets)))
    cli("apply", "-f", str(config), user="alice")
    hosts = ",".join(h.address for h in targets[:2])
    for extra in ([], ["--hosts", hosts], ["--config-only"]):
        args = ["--ref", "v1"] if extra != ["--config-only"] else []
        refused = cli(
            "deploy", repo.name, "--env", "production", *args, *extra, check=False, user="alice"
        )
        assert refused.returncode == 2, refused.stderr
        assert "\n" not in refused.stderr.strip(), refused.stderr  # one line, never wrapped
        (command,) = [c for c in suggested(refused.stderr) if c[:2] == ["ticket", "create"]]
        assert "--title" in command
        if extra == ["--config-only"]:  # runs, and is refused for the one reason left
            made = cli(*command, check=False, user="alice")
            assert made.returncode == 1 and "has no release yet" in made.stderr, made.stderr
            continue
        made = cli(*command, "--json", user="alice")
        ticket = yaml.safe_load(made.stdout)
        assert ticket["env"] == "production" and ticket["status"] == "pending_approval"
        assert ticket["ref"] == "v1"
        if extra[:1] == ["--hosts"]:
            assert ticket["hosts"] == hosts.split(",")
