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
core. ``--before SRC`` (the ``src`` directory of another checkout, e.g. ``git archive HEAD~5
src | tar -x -C /tmp/before``) measures that code too, alternating run by run with this one so
that both see the same load, and prints both columns. ``--json`` prints the figures as one
JSON document instead of a table.

Bytecode: an installed Ferryman has its ``.pyc`` files; a checkout run with
``PYTHONDONTWRITEBYTECODE=1`` (as on the development machines) compiles every module it imports
at every start. By default the commands here keep their bytecode in a private directory
(``PYTHONPYCACHEPREFIX``), as an installed package would; ``--bytecode as-is`` measures the
environment as it is.
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
from typing import Any

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


def measure(argv: list[str], envs: dict[str, dict[str, str]], runs: int) -> dict[str, Any]:
    """Per code under test (``envs``): the medians of ``runs`` runs, taken in turns."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in envs}
    for env in envs.values():
        run_once(argv, env)  # warm the page cache and the bytecode cache
    for _ in range(runs):
        for name, env in envs.items():
            samples[name].append(run_once(argv, env))
    return {
        name: {
            "cpu": statistics.median(c for c, _ in got),
            "wall": statistics.median(w for _, w in got),
        }
        for name, got in samples.items()
    }


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def throwaway_server(net: str, base: Path, env: dict[str, str]) -> Iterator[dict[str, str]]:
    """A real server with a fresh home on ``<net>.1``; yields the environment of a client
    logged in to it (its own config directory, so no real login is touched)."""
    address = f"{net}.1"
    home = base / "home"
    env = {**env, "FERRYMAN_HOME": str(home), "XDG_CONFIG_HOME": str(base / "config")}
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
    parser.add_argument("--before", type=Path, help="the src directory of the code to compare")
    parser.add_argument(
        "--bytecode",
        choices=["cached", "as-is"],
        default="cached",
        help="cached: .pyc files kept in a private directory (an installed package); "
        "as-is: the environment's PYTHONDONTWRITEBYTECODE and cache as they are",
    )
    args = parser.parse_args()
    if not args.net.startswith("127."):
        parser.error("--net must be a loopback /24 (127.x.y)")
    with tempfile.TemporaryDirectory(prefix="ferryman-cli-bench-") as tmp:
        envs = {"now": dict(os.environ)}
        if args.before:
            before = {**os.environ, "PYTHONPATH": str(args.before.resolve())}
            envs = {"before": before, **envs}
        for name, env in envs.items():
            if args.bytecode == "cached":
                env.pop("PYTHONDONTWRITEBYTECODE", None)
                env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache" / name)
        figures = measure_all(envs, args.runs, args.net, Path(tmp))
    if args.json:
        print(json.dumps({"runs": args.runs, "bytecode": args.bytecode, "figures": figures}))
        return
    print(
        f"medians of {args.runs} runs, bytecode {args.bytecode}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M')}"
    )
    print(f"{'case':<40}" + "".join(f" {name + ' CPU s':>14} {'wall s':>7}" for name in envs))
    for case, per in figures.items():
        cells = "".join(f" {per[name]['cpu']:>14.3f} {per[name]['wall']:>7.3f}" for name in envs)
        print(f"{case:<40}{cells}")


def measure_all(
    envs: dict[str, dict[str, str]], runs: int, net: str, tmp: Path
) -> dict[str, dict[str, Any]]:
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
    figures = {name: measure(argv, envs, runs) for name, argv in cases.items()}
    if os.environ.get("FERRYMAN_URL") and os.environ.get("FERRYMAN_TOKEN"):
        figures["ferryman deploys"] = measure([FERRYMAN, "deploys"], envs, runs)
    else:
        with throwaway_server(net, tmp, envs["now"]) as client_env:
            clients = {name: {**env, **_client(client_env)} for name, env in envs.items()}
            figures["ferryman deploys"] = measure([FERRYMAN, "deploys"], clients, runs)
    return figures


def _client(env: dict[str, str]) -> dict[str, str]:
    """What makes a command a client of the throwaway server."""
    return {name: env[name] for name in ("FERRYMAN_HOME", "XDG_CONFIG_HOME")}


if __name__ == "__main__":
    main()
