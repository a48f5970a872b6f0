"""The help of every command, pinned: each command and each of its options says what it is
for, metavars are words a person reads (no ``<str>``, no ``{project}``), and the README's
table of exit statuses is the one the code uses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ferryman.cli import exits
from ferryman.cli.helptext import walk
from ferryman.cli.main import command

TREE = command()
COMMANDS = walk(TREE)
README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_tree_has_every_command_a_ci_job_uses():
    paths = {" ".join(path[1:]) for path, _ in COMMANDS}
    for wanted in (
        "version",
        "deploy",
        "deploys",
        "rollback",
        "retry",
        "cancel",
        "logs",
        "check",
        "apply",
        "schema",
        "login",
        "ticket create",
        "ticket approve",
        "ticket deploy",
    ):
        assert wanted in paths, wanted


@pytest.mark.parametrize("path", [" ".join(p) for p, _ in COMMANDS])
def test_every_command_and_option_has_help_and_readable_metavars(path, capsys):
    cmd = dict((" ".join(p), c) for p, c in COMMANDS)[path]
    assert (cmd.help or "").strip(), f"`{path}` has no help"
    for param in cmd.params:
        if param.name == "help":
            continue
        assert (getattr(param, "help", "") or "").strip(), f"`{path}` {param.name}: no help"
    args = path.split()[1:]
    with pytest.raises(SystemExit) as exited:
        TREE.main([*args, "--help"], prog_name="ferryman")
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"Usage: {path} ")
    for bad in re.findall(r"<[a-z_\[\]]+>|\{[A-Za-z_]+\}", text):
        pytest.fail(f"`{path} --help` shows the metavar {bad}:\n{text}")


def test_the_readme_lists_exactly_the_exit_statuses_the_cli_uses():
    text = README.read_text()
    table = text.split("<!-- exit-statuses:", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", table, re.M)
    assert {int(code): meaning for code, meaning in rows} == exits.MEANING


@pytest.mark.parametrize("path", [" ".join(p) for p, _ in COMMANDS])
def test_every_command_sums_itself_up_in_one_line(path):
    cmd = dict((" ".join(p), c) for p, c in COMMANDS)[path]
    summary = (cmd.help or "").strip().split("\n\n")[0]
    assert "\n" not in summary and len(summary) <= 90, f"`{path}`: {summary!r}"
