"""A rollback end to end from the CLI, as a person waits for it: ``ferryman rollback … --wait``
against a real ``ferryman serve`` (embedded worker) and a real fleet, beside the asyncssh
``true`` floor measured in the same run.

    .venv/bin/python benchmarks/cli_rollback.py [--hosts 5] [--rounds 5] [--net 127.0.120]

Each round deploys ``master`` again (not measured) and then rolls back to the release before it
(measured): the wall time of the CLI command from its start to its exit, its own CPU seconds,
and what the server recorded (queue pick-up: created → started; the run: started →
finished). Medians are printed. The floor is connecting to every host and running ``true``,
in parallel (asyncssh, as a deploy does), the median of three. The hosts take
``<net>.1``…, the git host ``<net>.250``, the server ``<net>.200``; each host has a tmpfs
``/srv``. Needs root, like the test fleet. The server and the CLI keep their bytecode in a
private directory, as an installed package would (``benchmarks/cli_startup.py``). Before and
after: run it with ``PYTHONPATH`` set to another checkout's ``src``.
"""

from __future__ import annotations

import argparse
import asyncio
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
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ferryman.remote.executor import Executor, Target, fan_out
from ferryman.testing.fleet import add_host, start_fleet

FERRYMAN = shutil.which("ferryman", path=os.path.dirname(sys.executable)) or "ferryman"
PASSWORD = "benchmark password 1"
ENV = "staging"  # a seeded environment that needs no approval


def children_cpu() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def cli(env: dict[str, str], *args: str) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds, stdout) of one ``ferryman`` command, which must succeed."""
    cpu, started = children_cpu(), time.perf_counter()
    done = subprocess.run(
        [FERRYMAN, *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"ferryman {' '.join(args)}: {done.returncode}\n{done.stderr}")
    return wall, children_cpu() - cpu, done.stdout


async def _floor(key: Path, known: Path, targets: list[Target]) -> None:
    ex = Executor(client_key=key, known_hosts=known)
    try:

        async def one(target: Target) -> None:
            await ex.run(target, ("true",), stage="floor", timeout=60)

        failures = await fan_out(targets, one, 200)
        assert not failures, failures
    finally:
        await ex.close()


def floor(key: Path, known: Path, targets: list[Target]) -> float:
    walls = []
    for _ in range(3):
        started = time.perf_counter()
        asyncio.run(_floor(key, known, targets))
        walls.append(time.perf_counter() - started)
    return statistics.median(walls)


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=b", "-c", "user.email=b@x", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=120,
    )


def _seconds(deploy: dict[str, Any], start: str, end: str) -> float | None:
    if not deploy.get(start) or not deploy.get(end):
        return None
    began = datetime.fromisoformat(deploy[start])
    ended = datetime.fromisoformat(deploy[end])
    return (ended - began).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--net", default=os.environ.get("FERRYMAN_BENCH_NET", "127.0.120"))
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    if not args.net.startswith("127."):
        parser.error("--net must be a loopback /24 (127.x.y)")

    base = Path(tempfile.mkdtemp(prefix="ferryman-cli-rollback-"))
    fleet = start_fleet(base / "fleet", args.hosts, network=args.net, tmpfs=True)
    server: subprocess.Popen[bytes] | None = None
    try:
        git_host = add_host(fleet, "git", f"{args.net}.250")
        hosts = [h for h in fleet.hosts if h.name != "git"]
        bare = git_host.root / "git" / "bench.git"
        bare.parent.mkdir(parents=True)
        subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True, timeout=60)
        work = base / "work"
        work.mkdir()
        _git("init", "-q", "-b", "master", cwd=work)
        for i in range(20):
            (work / f"page{i}.html").write_text(f"page {i}\n" * 50)
        _git("add", "-A", cwd=work)
        _git("commit", "-q", "-m", "first", cwd=work)
        _git("push", "-q", str(bare), "HEAD:master", cwd=work)

        home = base / "home"
        (home / "ssh").mkdir(parents=True)
        shutil.copy(fleet.client_key, home / "ssh" / "id_ed25519")
        shutil.copy(fleet.known_hosts, home / "ssh" / "known_hosts")
        env = {**os.environ, "FERRYMAN_HOME": str(home), "XDG_CONFIG_HOME": str(base / "cfg")}
        for name in ("FERRYMAN_URL", "FERRYMAN_TOKEN", "PYTHONDONTWRITEBYTECODE"):
            env.pop(name, None)
        env["PYTHONPYCACHEPREFIX"] = str(base / "pycache")  # as an installed package has
        cli(env, "admin", "create-user", "bench", "--password", PASSWORD, "--superuser")
        address = f"{args.net}.200"
        with socket.socket() as s:
            s.bind((address, 0))
            port = int(s.getsockname()[1])
        url = f"http://{address}:{port}"
        quiet = ["--no-access-log", "--log-level", "warning"]
        server = subprocess.Popen(
            [FERRYMAN, "serve", "--host", address, "--port", str(port), *quiet],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                with socket.create_connection((address, port), timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.2)
        cli(env, "login", "--server", url, "--username", "bench", "--password", PASSWORD)
        config = {
            "project": "bench",
            "repo": f"ssh://root@{git_host.address}/srv/git/bench.git",
            "environments": {
                ENV: {
                    "hosts": [h.address for h in hosts],
                    "user": "root",
                    "webroot": "/srv/www/bench",
                    "releases": "/srv/releases/bench",
                    "parallel": args.hosts,
                }
            },
        }
        project_file = base / "bench.yaml"
        project_file.write_text(json.dumps(config))  # JSON is YAML
        cli(env, "apply", "--file", str(project_file))
        cli(env, "deploy", "bench", "--env", ENV, "--ref", "master", "--wait")

        targets = [Target(h.address, h.address, 22, "root") for h in hosts]
        floor_wall = floor(fleet.client_key, fleet.known_hosts, targets)
        rounds: list[dict[str, Any]] = []
        for _ in range(args.rounds):
            cli(env, "deploy", "bench", "--env", ENV, "--ref", "master", "--wait")
            wall, cpu, out = cli(env, "rollback", "bench", "--env", ENV, "--wait", "--json")
            deploy = json.loads(out)
            assert deploy["status"] == "success", deploy
            rounds.append(
                {
                    "wall": wall,
                    "cli_cpu": cpu,
                    "pickup": _seconds(deploy, "created_at", "started_at"),
                    "run": _seconds(deploy, "started_at", "finished_at"),
                }
            )
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(30)
        fleet.stop()
        shutil.rmtree(base, ignore_errors=True)

    def median(key: str) -> float | None:
        values = [r[key] for r in rounds if r[key] is not None]
        return statistics.median(values) if values else None

    figures = {
        "hosts": args.hosts,
        "rounds": args.rounds,
        "floor_ssh_true_asyncssh": floor_wall,
        **{key: median(key) for key in ("wall", "cli_cpu", "pickup", "run")},
        "each": rounds,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"{args.hosts} hosts, medians of {args.rounds} rounds, {time.strftime('%Y-%m-%d')}")
    print(f"asyncssh `true` floor           {floor_wall:6.3f} s")
    for key, label in (
        ("wall", "`ferryman rollback --wait`"),
        ("cli_cpu", "  its CPU (the CLI process)"),
        ("pickup", "  queue pick-up (server)"),
        ("run", "  run (server: started→end)"),
    ):
        value = figures[key]
        if value is not None:
            print(f"{label:<32}{value:6.3f} s")
    print(f"ratio to the floor              {figures['wall'] / floor_wall:6.2f}×")


if __name__ == "__main__":
    main()
