"""Commands a deploy can stop later (``commands.processes``): the builders, and the scripts
run for real by this machine's bash, each command in a session of its own as sshd starts it
(the fleet tests run them over SSH)."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from functools import partial
from pathlib import Path

import pytest

from ferryman.commands import processes
from ferryman.commands.remote import Layout
from ferryman.remote.executor import wrap

LAYOUT = Layout(
    webroot="/data/nginx/web site", releases="/data/release/web site", shared_dir="/data/shared"
)


def _layout(tmp_path: Path) -> Layout:
    return Layout(
        webroot=str(tmp_path / "www"), releases=str(tmp_path / "rel"), shared_dir=str(tmp_path)
    )


def _alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped runs nothing)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _markers(layout: Layout) -> list[str]:
    return sorted(os.listdir(processes.run_dir(layout)))


def _session(argv, **kwargs) -> subprocess.Popen[bytes]:
    """Started as sshd starts a command: in a new session."""
    return subprocess.Popen(argv, start_new_session=True, **kwargs)


def _run(argv, **kwargs) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, start_new_session=True, capture_output=True, timeout=60, **kwargs)


def _wait_markers(layout: Layout, count: int) -> None:
    deadline = time.monotonic() + 10
    while not (os.path.isdir(processes.run_dir(layout)) and len(_markers(layout)) >= count):
        assert time.monotonic() < deadline, "the tracked commands never recorded themselves"
        time.sleep(0.02)


def test_a_tracked_command_is_the_wrapper_then_its_own_argv():
    argv = processes.track(LAYOUT, 42, ("timeout", "-k", "5", "30", "true"))
    assert argv == (
        "bash",
        "-c",
        processes.TRACK,
        "ferryman-run",
        "/data/release/web site/.ferryman-run",
        "42.",
        "timeout",
        "-k",
        "5",
        "30",
        "true",
    )


def test_the_executor_starts_a_tracked_command_with_the_remote_timeout_inside():
    line = wrap(("test", "-d", "/a b"), 30, partial(processes.track, LAYOUT, 7))
    assert shlex.split(line) == [
        "bash",
        "-c",
        processes.TRACK,
        "ferryman-run",
        "/data/release/web site/.ferryman-run",
        "7.",
        *("timeout", "-k", "5", "30", "test", "-d", "/a b"),
    ]
    assert wrap(("true",), 30) == "timeout -k 5 30 true"  # untracked: as before


def test_stop_names_its_deploy_s_markers_only_and_quotes_the_marker_dir():
    argv = processes.stop(LAYOUT, 4, grace=2, gone_wait=3)
    assert argv[:2] == ("bash", "-c")
    assert "r='/data/release/web site/.ferryman-run' n=4.\n" in argv[2]
    assert "-lt 20 ]; do sleep 0.1" in argv[2] and "-lt 30 ]; do sleep 0.1" in argv[2]


def test_what_stop_printed_is_read_as_stopped_and_surviving_groups():
    out = "stopped\t12\nstopped\t13\nalive\t14\nnoise\nstopped\t-1\nstopped\t١٢\n"
    assert processes.stopped(out) == ([12, 13], [14])


def test_a_tracked_command_keeps_its_stdin_output_and_status_and_leaves_no_marker(tmp_path):
    layout = _layout(tmp_path)
    argv = processes.track(layout, 5, ("bash", "-c", "cat; echo err >&2; exit 3"))
    done = _run(argv, input=b"through stdin\n")
    assert (done.returncode, done.stdout, done.stderr) == (3, b"through stdin\n", b"err\n")
    assert _markers(layout) == []
    assert oct(os.stat(processes.run_dir(layout)).st_mode & 0o777) == "0o700"


def test_a_tracked_command_runs_untracked_where_the_marker_dir_cannot_be(tmp_path):
    (tmp_path / "rel").write_text("not a directory\n")
    argv = processes.track(_layout(tmp_path), 5, ("echo", "still runs"))
    done = _run(argv)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"still runs\n", b"")


def test_a_command_in_a_session_with_other_work_in_it_is_never_recorded(tmp_path):
    layout = _layout(tmp_path)
    argv = processes.track(layout, 5, ("echo", "untracked"))
    # a child of a shell that is not its session's leader, in the session pytest runs in
    done = subprocess.run(["bash", "-c", '"$@"; :', "-", *argv], capture_output=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, b"untracked\n")
    assert not os.path.exists(processes.run_dir(layout))


@pytest.mark.parametrize("trap", ["", "trap '' TERM; "])
def test_stop_ends_a_deploy_s_commands_and_their_children_and_nothing_else(tmp_path, trap):
    layout = _layout(tmp_path)
    # a child in a process group of its own (as `timeout` in a hook makes) is still stopped
    script = f"{trap}set -m; sleep 60 & echo $! > {tmp_path}/child; wait"
    ours = _session(processes.track(layout, 4, ("bash", "-c", script)))
    other_deploy = _session(processes.track(layout, 42, ("sleep", "60")))
    try:
        _wait_markers(layout, 2)
        while not (tmp_path / "child").exists():
            time.sleep(0.02)
        child = int((tmp_path / "child").read_text())
        assert os.getpgid(child) != os.getpgid(ours.pid)
        done = _run(processes.stop(layout, 4, grace=1))
        assert done.returncode == 0, done.stderr
        assert processes.stopped(done.stdout.decode()) == ([ours.pid], [])
        assert ours.wait(10) in (-15, -9)  # the wrapper itself is part of the session
        assert not _alive(child)
        assert _alive(other_deploy.pid)
        assert _markers(layout) == [f"42.{other_deploy.pid}"]
    finally:
        for proc in (other_deploy, ours):
            proc.kill()
            proc.wait(10)


def test_a_stale_or_forged_marker_never_signals_the_process_it_names(tmp_path):
    layout = _layout(tmp_path)
    run_dir = Path(processes.run_dir(layout))
    run_dir.mkdir(parents=True)
    unrelated = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        (run_dir / f"4.{unrelated.pid}").write_text("1\n")  # the pid, reused: not its start
        (run_dir / "4.1").write_text("1\n")  # never "every process"
        (run_dir / "4.0012").write_text("1\n")
        (run_dir / "4.x").write_text("1\n")
        (run_dir / f"4.{os.getpid()}").symlink_to("/proc/self/stat")
        done = _run(processes.stop(layout, 4))
        assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
        assert _alive(unrelated.pid) and _alive(os.getpid())
        assert _markers(layout) == [f"4.{os.getpid()}"]  # the symlink is not even read
    finally:
        unrelated.kill()
        unrelated.wait(10)


def test_a_marker_dir_that_is_a_symlink_is_neither_written_nor_read(tmp_path):
    layout = _layout(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "rel").mkdir()
    Path(processes.run_dir(layout)).symlink_to(elsewhere)
    victim = _session(processes.track(layout, 4, ("sleep", "60")))
    try:
        start = Path(f"/proc/{victim.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        (elsewhere / f"4.{victim.pid}").write_text(start + "\n")
        done = _run(processes.stop(layout, 4))
        assert (done.returncode, done.stdout) == (0, b"")
        assert _alive(victim.pid)
        assert os.listdir(elsewhere) == [f"4.{victim.pid}"]  # only what the test put there
    finally:
        victim.kill()
        victim.wait(10)
