"""Ferryman's own processes for fault tests: a ``ferryman serve`` that can be stopped with
SIGTERM and started again on the same port and database, and a standalone ``ferryman
worker``. Output goes to a log file (appended across restarts), so a failure can show it;
every process is signalled by its pid, never by name.

    server = FerrymanProcess.serve(18120, env, log, worker=False, host="127.0.100.70")
    server.start()                     # waits until /healthz answers; server.url
    server.terminate()                 # SIGTERM: uvicorn's graceful shutdown
    server.wait(60)                    # its exit status
    server.start()                     # again, same port
    server.stop()                      # SIGTERM, then SIGKILL if it lingers
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def ferryman_exe() -> str:
    """The ``ferryman`` script of the running interpreter's environment."""
    return shutil.which("ferryman", path=os.path.dirname(sys.executable)) or "ferryman"


class FerrymanProcess:
    """One ``ferryman ARGS`` child process; ``url`` (for ``serve``) is where it answers."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, url: str = "") -> None:
        self.args = args
        self.env = env
        self.log = log
        self.url = url
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def serve(
        cls,
        port: int,
        env: dict[str, str],
        log: Path,
        worker: bool = True,
        host: str = "127.0.0.1",
    ) -> FerrymanProcess:
        """``ferryman serve`` on ``host``:``port`` (with its embedded worker or not). Tests
        that run beside each other (pytest-xdist workers) each pass an address of their own."""
        if not host.startswith("127."):
            raise ValueError(f"a test server listens on loopback only, not {host}")
        args = ["serve", "--host", host, "--port", str(port)]
        args += [] if worker else ["--no-worker"]
        return cls(args, env, log, url=f"http://{host}:{port}")

    @classmethod
    def worker(cls, env: dict[str, str], log: Path) -> FerrymanProcess:
        return cls(["worker"], env, log)

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("not started")
        return self.proc.pid

    def start(self) -> None:
        """Start it; a server is waited for until ``/healthz`` answers."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"ferryman {self.args[0]} is running already")
        with self.log.open("ab") as out:
            self.proc = proc = subprocess.Popen(
                [ferryman_exe(), *self.args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if self.url:
            self._wait_up(proc)

    def _wait_up(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                httpx.get(self.url + "/healthz", timeout=1)
                return
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"{self.url} did not start:\n{self.output()}") from None
                time.sleep(0.1)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self) -> None:
        """SIGTERM (a graceful stop)."""
        self.send(signal.SIGTERM)

    def send(self, sig: signal.Signals) -> None:
        if self.running():
            os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int | None:
        """Its exit status (negative: the signal that ended it), or None if still running
        after ``timeout`` seconds."""
        if self.proc is None:
            raise RuntimeError("not started")
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.running():
            self.send(signal.SIGKILL)
            self.wait(STOP_TIMEOUT)

    def stop(self) -> None:
        """SIGTERM, and SIGKILL if it is still there after ``STOP_TIMEOUT`` seconds."""
        if not self.running():
            return
        self.terminate()
        if self.wait(STOP_TIMEOUT) is None:
            self.kill()

    def output(self) -> str:
        """The tail of what it printed (every start so far)."""
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""
