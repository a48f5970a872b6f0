"""Pure logic: release names, pruning, manifests and deltas, task variables."""

from __future__ import annotations

from datetime import UTC, datetime

from ferryman.domain.manifest import diff, excluded
from ferryman.domain.release import choose_prunable, previous_release, release_name
from ferryman.domain.variables import substitute, task_script


def test_release_names_carry_time_sanitised_ref_and_short_commit():
    when = datetime(2026, 11, 22, 3, 4, 5, tzinfo=UTC)
    assert (
        release_name(when, "feature/login page", "0123456789ab")
        == "20261122-030405_feature-login-page_0123456"
    )


def test_pruning_keeps_live_and_previous_and_removes_unfinished_first():
    on_host = [
        "20260101-000000_a_1",
        "20260102-000000_a_2",
        "20260103-000000_a_3",
        "20260104-000000_a_4",
        "20260105-000000_a_5",
    ]
    complete = set(on_host) - {"20260104-000000_a_4"}
    doomed = choose_prunable(
        on_host,
        keep=2,
        live="20260105-000000_a_5",
        previous_good="20260101-000000_a_1",
        complete=complete,
    )
    assert doomed == ["20260104-000000_a_4", "20260102-000000_a_2", "20260103-000000_a_3"]


def test_pruning_never_touches_the_live_release_even_when_over_the_limit():
    doomed = choose_prunable(["b", "c"], keep=1, live="c", previous_good="b", complete={"b", "c"})
    assert doomed == []


def test_previous_release_is_the_newest_older_than_current():
    assert previous_release(["r1", "r2", "r3"], "r3") == "r2"
    assert previous_release(["r1", "r2", "r3"], "r2") == "r1"
    assert previous_release(["r1"], "r1") is None


def test_delta_sends_changed_and_new_and_deletes_changed_and_gone():
    base = {
        "a": ("f", 0o644, "1"),
        "b": ("f", 0o644, "2"),
        "d": ("d", 0o755, ""),
        "d/x": ("f", 0o644, "3"),
        "gone": ("d", 0o755, ""),
        "gone/y": ("f", 0o644, "4"),
    }
    new = {
        "a": ("f", 0o644, "1"),
        "b": ("f", 0o644, "9"),
        "d": ("d", 0o775, ""),
        "d/x": ("f", 0o644, "3"),
        "c": ("l", 0o777, "a"),
    }
    delta = diff(base, new)
    assert delta.delete == ["b", "gone"]
    assert delta.send == ["b", "c", "d"]


def test_excludes_match_names_anywhere_or_anchored_paths():
    assert excluded("docs/readme.md", ["*.md"])
    assert excluded(".git/config", [".git"])
    assert excluded("node_modules/x/y.js", ["node_modules/"])
    assert excluded("build/out", ["/build"])
    assert not excluded("src/build/out", ["/build"])
    assert not excluded("src/app.py", ["*.md", ".git"])


def test_walle_style_braces_become_shell_variables_only_for_known_names():
    assert (
        substitute("cd {WORKSPACE} && echo {a,b} ${HOME} {HOST}")
        == "cd ${WORKSPACE} && echo {a,b} ${HOME} ${HOST}"
    )


def test_task_scripts_are_strict_and_export_quoted_values():
    script = task_script("echo $X", {"X": "it's $(not run)"}, cwd="/srv/a b")
    assert script.splitlines() == [
        "set -euo pipefail",
        "export X='it'\"'\"'s $(not run)'",
        "cd -- '/srv/a b'",
        "echo $X",
    ]
