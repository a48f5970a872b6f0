"""The failure banner's facts, from a deploy's error record (pure: no server, no fleet)."""

from __future__ import annotations

import shlex
from typing import Any

from ferryman.domain.masking import Masker
from ferryman.web.failure import failure, readable_command


def test_a_bash_c_command_is_shown_as_its_script_without_nested_quoting():
    script = "set -e\ncd '/srv/releases/site'\necho \"it's done\"\n"
    command = shlex.join(["timeout", "-k", "5", "60", "bash", "-c", script])
    shown = readable_command(command)
    assert shown == {"run": "timeout -k 5 60 bash -c", "script": script.strip("\n")}


def test_a_command_that_is_no_shell_script_or_cannot_be_split_stays_whole():
    assert readable_command("ln -sfn a b") == {"run": "ln -sfn a b", "script": ""}
    assert readable_command("echo 'unclosed") == {"run": "echo 'unclosed", "script": ""}


def test_the_failure_names_host_stage_exit_and_the_last_stderr_lines_masked():
    tail = "\n".join(f"line {n}" for n in range(30)) + "\ntoken hunter2-secret\n"
    deploy = {
        "status": "failed",
        "error": {
            "code": "remote_failed",
            "message": "pre_release failed on 127.0.150.202",
            "details": {
                "host": "127.0.150.202",
                "stage": "pre_release",
                "exit_status": 3,
                "stderr_tail": tail,
                "command": "bash -c 'curl -H \"X: hunter2-secret\" x'",
            },
        },
        "hosts": [
            {"host": "b", "status": "failed", "error": "boom hunter2-secret"},
            {"host": "a", "status": "reverted", "error": None},
        ],
    }
    shown = failure(deploy, Masker(["hunter2-secret"]))
    assert shown is not None
    assert (shown["host"], shown["stage"], shown["exit_status"]) == (
        "127.0.150.202",
        "pre_release",
        3,
    )
    assert len(shown["stderr"]) == 12 and shown["stderr"][-1] == "token ***"
    assert shown["command"]["script"] == 'curl -H "X: ***" x'
    assert shown["failed_hosts"] == [{"host": "b", "error": "boom ***"}]


def test_a_successful_deploy_has_no_failure_unless_a_gray_release_missed_hosts():
    ok: dict[str, Any] = {
        "status": "success",
        "error": None,
        "hosts": [{"host": "a", "status": "success"}],
    }
    assert failure(ok, Masker([])) is None
    missed = {**ok, "hosts": [*ok["hosts"], {"host": "b", "status": "failed", "error": "x"}]}
    shown = failure(missed, Masker([]))
    assert shown is not None and shown["message"] == "" and shown["failed_hosts"][0]["host"] == "b"
    assert failure({"status": "running", "error": None}, Masker([])) is None
