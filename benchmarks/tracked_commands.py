"""What recording every deploy command on its host (``commands.processes.track``) costs: one
command (``true``) on every host of a real fleet, in parallel over open connections, plain
versus tracked, alternating rounds in the same run; medians reported.

    .venv/bin/python benchmarks/tracked_commands.py [--hosts 5] [--rounds 200] [--disk]

Each host has a tmpfs ``/srv`` unless ``--disk`` is given. Needs root, like the test fleet.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ferryman.commands import processes
from ferryman.commands.remote import Layout
from ferryman.remote.executor import Executor, Target, fan_out
from ferryman.testing.fleet import start_fleet

LAYOUT = Layout(webroot="/srv/www/bench", releases="/srv/releases/bench", shared_dir="/srv/s")


async def measure(executor: Executor, targets: list[Target], rounds: int) -> dict[str, float]:
    track = partial(processes.track, LAYOUT, 1)
    times: dict[str, list[float]] = {"plain": [], "tracked": []}

    async def once(how: str) -> None:
        async def one(target: Target) -> None:
            await executor.run(
                target,
                ("true",),
                stage="bench",
                timeout=30,
                track=track if how == "tracked" else None,
            )

        start = time.perf_counter()
        failures = await fan_out(targets, one, len(targets))
        assert not failures, failures
        times[how].append(time.perf_counter() - start)

    await once("plain")  # connect, warm up
    await once("tracked")
    for index in range(rounds * 2):
        await once("plain" if index % 2 == 0 else "tracked")
    return {how: statistics.median(values) for how, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--disk", action="store_true")
    parser.add_argument("--net", default=os.environ.get("FERRYMAN_BENCH_NET", "127.0.131"))
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="ferryman-bench-"))
    fleet = start_fleet(base, args.hosts, network=args.net, tmpfs=not args.disk)
    try:
        executor = Executor(client_key=fleet.client_key, known_hosts=fleet.known_hosts)
        targets = [Target(h.address, h.address, 22, "root") for h in fleet.hosts]

        async def run() -> dict[str, float]:
            try:
                return await measure(executor, targets, args.rounds)
            finally:
                await executor.close()

        medians = asyncio.run(run())
    finally:
        fleet.stop()
        shutil.rmtree(base, ignore_errors=True)
    plain, tracked = medians["plain"], medians["tracked"]
    print(f"`true` on {args.hosts} hosts at once, median of {args.rounds} rounds each:")
    print(f"  plain   {plain * 1000:6.1f} ms")
    print(f"  tracked {tracked * 1000:6.1f} ms  (+{(tracked - plain) * 1000:.1f} ms)")


if __name__ == "__main__":
    main()
