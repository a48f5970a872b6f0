"""The Walle ``{NAME}`` forms: what each means where a task runs, and that a value never
becomes shell syntax however it is written."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ferryman.domain.variables import substitute, task_script, walle_forms, with_aliases


def _bash(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=30
    )


def test_version_is_the_release_directory_everywhere_and_workspace_depends_on_the_place():
    script = "cd {VERSION} && ls {WORKSPACE} && echo ${VERSION} ${WORKSPACE} {HOST} {a,b}"
    assert substitute(script, "target") == (
        "cd ${RELEASE} && ls ${RELEASE} && echo ${VERSION} ${WORKSPACE} ${HOST} {a,b}"
    )
    assert substitute(script, "deploy_host") == (
        "cd ${RELEASE} && ls ${WORKSPACE} && echo ${VERSION} ${WORKSPACE} ${HOST} {a,b}"
    )


def test_walle_forms_names_only_the_braced_known_names():
    assert walle_forms("cd {VERSION}; echo ${WORKSPACE} {NOPE} {WORKSPACE}") == {
        "VERSION",
        "WORKSPACE",
    }


def test_walle_two_aliases_follow_ferrymans_names_but_yield_to_the_environments():
    own = {"COMMIT": "abc", "PROJECT": "shop", "DEPLOY_ID": "7", "RELEASES": "/srv/r"}
    values = with_aliases({"PROJECT_NAME": "mine"}, own)
    assert values["COMMIT_ID"] == "abc"
    assert values["TASK_ID"] == "7"
    assert values["CURRENT_RELEASE"] == "/srv/r"
    assert values["PROJECT_NAME"] == "mine"  # the environment's own variable wins
    assert with_aliases({"COMMIT": "forged"}, own)["COMMIT"] == "abc"  # Ferryman's win


def test_a_hostile_release_path_in_a_walle_hook_is_never_run(tmp_path):
    # no blank: an unquoted ``${RELEASE}`` splits on blanks (as Walle's pasted path did),
    # but nothing in a value is ever run
    hostile = tmp_path / "rel$(touch${IFS}pwned)`touch${IFS}pwned2`;touch${IFS}pwned3"
    hostile.mkdir()
    (hostile / "index.html").write_text("ok\n")
    script = task_script(
        'cd {VERSION}\ncat index.html\necho "{WORKSPACE}"',
        {"RELEASE": str(hostile), "WORKSPACE": "/nowhere"},
        where="target",
    )
    shown = _bash(script, tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == f"ok\n{hostile}\n"
    assert not any((tmp_path / n).exists() for n in ("pwned", "pwned2", "pwned3"))
