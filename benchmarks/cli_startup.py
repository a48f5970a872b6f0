"""CLI start-up: the CPU seconds and wall time of a few ``ferryman`` commands, beside the floor
of the libraries every command needs.

    .venv/bin/python benchmarks/cli_startup.py [--runs 7] [--net 127.0.120]

Each case runs ``--runs`` times as a fresh process; the medians of its CPU seconds (user +
system, from the kernel's accounting of the child) and of its wall time are printed. Cases:

- ``python -c pass`` and ``import typer, rich, httpx, pydantic`` (the floor of any command);
- ``ferryman --help`` and ``ferryman deploy --help`` (help only: nothing to connect to);
- ``ferryman deploys`` against a real server: started here (``ferryman serve --no-worker`` with
  a throwaway home on ``<net>.1``, a user made with ``ferryman admin create-user``), or the
  one of ``FERRYMAN_URL`` and ``FERRYMAN_TOKEN`` when both are set.

CPU seconds are the figure to compare on a shared machine: wall time includes waiting for a
core. ``--json`` prints the figures as one JSON document instead of a table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PYTHON = sys.executable
FERRYMAN = shutil.which("ferryman", path=os.path.dirname(sys.executable)) or "ferryman"
PASSWORD = "benchmark password 1"


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one run of ``argv`` as a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, timeout=120)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def measure(argv: list[str], env: dict[str, str], runs: int) -> dict[str, float]:
    run_once(argv, env)  # warm the page cache and the bytecode cache
    samples = [run_once(argv, env) for _ in range(runs)]
    return {
        "cpu": statistics.median(c for c, _ in samples),
        "wall": statistics.median(w for _, w in samples),
    }


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def throwaway_server(net: str, base: Path) -> Iterator[dict[str, str]]:
    """A real server with a fresh home on ``<net>.1``; yields the environment of a client
    logged in to it (its own config directory, so no real login is touched)."""
    address = f"{net}.1"
    home = base / "home"
    env = {**os.environ, "FERRYMAN_HOME": str(home), "XDG_CONFIG_HOME": str(base / "config")}
    for name in ("FERRYMAN_URL", "FERRYMAN_TOKEN"):
        env.pop(name, None)
    create = ["admin", "create-user", "bench", "--password", PASSWORD, "--superuser"]
    subprocess.run(
        [FERRYMAN, *create, "--create-home"],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = _free_port(address)
    url = f"http://{address}:{port}"
    quiet = ["--no-worker", "--no-access-log", "--log-level", "warning"]
    server = subprocess.Popen(
        [FERRYMAN, "serve", "--host", address, "--port", str(port), *quiet],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with socket.create_connection((address, port), timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.2)
        subprocess.run(
            [FERRYMAN, "login", "--server", url, "--username", "bench", "--password", PASSWORD],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        yield env
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per case (medians)")
    parser.add_argument(
        "--net", default=os.environ.get("FERRYMAN_BENCH_NET", "127.0.120"), help="loopback /24"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    if not args.net.startswith("127."):
        parser.error("--net must be a loopback /24 (127.x.y)")

    env = dict(os.environ)
    cases: dict[str, list[str]] = {
        "python -c pass": [PYTHON, "-c", "pass"],
        "import typer, rich, httpx, pydantic": [
            PYTHON,
            "-c",
            "import typer, rich.console, rich.table, httpx, pydantic",
        ],
        "ferryman --help": [FERRYMAN, "--help"],
        "ferryman deploy --help": [FERRYMAN, "deploy", "--help"],
    }
    figures = {name: measure(argv, env, args.runs) for name, argv in cases.items()}
    with tempfile.TemporaryDirectory(prefix="ferryman-cli-bench-") as tmp:
        if os.environ.get("FERRYMAN_URL") and os.environ.get("FERRYMAN_TOKEN"):
            figures["ferryman deploys"] = measure([FERRYMAN, "deploys"], env, args.runs)
        else:
            with throwaway_server(args.net, Path(tmp)) as client_env:
                figures["ferryman deploys"] = measure([FERRYMAN, "deploys"], client_env, args.runs)

    if args.json:
        print(json.dumps({"runs": args.runs, "figures": figures}, indent=2))
        return
    print(f"medians of {args.runs} runs, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    print(f"{'case':<40} {'CPU s':>7} {'wall s':>7}")
    for name, f in figures.items():
        print(f"{name:<40} {f['cpu']:>7.3f} {f['wall']:>7.3f}")


if __name__ == "__main__":
    main()
