"""A worker started with a low soft limit of open files (1024 is a common default for a
service) raises it to the hard limit at start: a deploy to hundreds of hosts holds a socket per
connection, up to ``parallel`` of them, beside its database connections and build pipes. Read
from the running process's own ``/proc/PID/limits``."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from pathlib import Path

from ferryman.testing.processes import ferryman_exe

PATIENCE = 60.0  # a generous bound for the worker to start; never an assertion on time


def _soft_open_files(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open files limit")


def test_a_worker_started_with_a_low_open_files_limit_raises_it_to_the_hard_limit(tmp_path):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = 256
    assert hard == resource.RLIM_INFINITY or hard > low
    ceiling = (
        hard if hard != resource.RLIM_INFINITY else int(Path("/proc/sys/fs/nr_open").read_text())
    )
    log = tmp_path / "worker.log"
    env = {**os.environ, "FERRYMAN_HOME": str(tmp_path / "home")}
    with log.open("wb") as out:
        # prlimit execs the worker: the same pid, started with the low soft limit
        proc = subprocess.Popen(
            ["prlimit", f"--nofile={low}:{hard}", ferryman_exe(), "worker"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + PATIENCE
        while "worker " not in log.read_text(errors="replace"):  # its first line: started
            assert proc.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "the worker never started"
            time.sleep(0.1)
        assert _soft_open_files(proc.pid) == ceiling
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
