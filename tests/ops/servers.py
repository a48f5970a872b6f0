"""A real ``ferryman serve`` or ``ferryman worker`` process for the operations tests: its
own home, port and log file, started and stopped by its pid."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

EXE = shutil.which("ferryman", path=os.path.dirname(sys.executable)) or "ferryman"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ferryman_env(home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "FERRYMAN_HOME": str(home), "FERRYMAN_WORKER_POLL": "0.2", **extra}
    # COLUMNS (set in pytest-xdist workers) would make the CLI wrap what it prints off a terminal
    for name in (
        "FERRYMAN_URL",
        "FERRYMAN_TOKEN",
        "FERRYMAN_DATABASE_URL",
        "FERRYMAN_SECRET_KEY",
        "COLUMNS",
    ):
        if name not in extra:
            env.pop(name, None)
    return env


def cli(
    home: Path, *args: str, check: bool = True, exe: tuple[str, ...] = (EXE,), **env: str
) -> subprocess.CompletedProcess[str]:
    """``ferryman ARGS`` on ``home``; ``exe``: another ferryman (an older version's code)."""
    result = subprocess.run(
        [*exe, *args], env=ferryman_env(home, **env), capture_output=True, text=True, timeout=300
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


class Process:
    """``ferryman serve`` (``url`` set once /healthz answers) or ``ferryman worker``."""

    def __init__(
        self,
        home: Path,
        log: Path,
        command: str = "serve",
        args: tuple[str, ...] = (),
        port: int | None = None,
        exe: tuple[str, ...] = (EXE,),
        **env: str,
    ) -> None:
        self.home, self.log, self.command, self.exe = home, log, command, exe
        self.port = port or free_port()
        self.args = args
        self.env = ferryman_env(home, **env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> Process:
        argv = [*self.exe, self.command, *self.args]
        if self.command == "serve":
            argv += ["--port", str(self.port)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, env=self.env, stdout=out, stderr=out)
        if wait and self.command == "serve":
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                httpx.get(self.url + "/healthz", timeout=1)
                return
            except httpx.HTTPError:
                assert self.proc is not None
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("ferryman serve did not start:\n" + self.output()) from None
                time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def __enter__(self) -> Process:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
