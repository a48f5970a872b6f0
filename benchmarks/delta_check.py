"""What checking the delta base costs: one-file redeploys with the check of each host's live
release against its manifest on and off, alternating in the same run (the same fleet, repo and
releases), medians reported.

    .venv/bin/python benchmarks/delta_check.py --hosts 20 --files 5000 --mb 50 --rounds 4

"Off" replaces ``transfer.check_bases`` with nothing (what a deploy did before the check). The
check runs while the deploy host checks out and builds, beside the early hard-link copy; the
figure that matters is the redeploy's wall time, and the check's own time per host beside it.
Each host has a tmpfs ``/srv`` unless ``--disk``. Needs root, like the test fleet.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deploy_fleet import ACTOR, ENV, change_one_file, generate_repo, measure

from ferryman.commands import integrity as listing
from ferryman.config.project import parse_project
from ferryman.config.settings import load_settings
from ferryman.db.session import Database
from ferryman.jobs.deploy_job import run_deploy
from ferryman.pipeline import transfer
from ferryman.pipeline.context import Context
from ferryman.services import deploy_views, deploys, projects, queue
from ferryman.testing.fleet import add_host, start_fleet

CHECK = transfer.check_bases
parsed = 0


def counting_parse(output: str) -> listing.Listing:
    global parsed
    parsed += 1
    return PARSE(output)


PARSE = listing.parse


async def no_check(ctx: Context) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--per-dir", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=4, help="on/off pairs")
    parser.add_argument("--disk", action="store_true", help="disk-backed /srv instead of tmpfs")
    parser.add_argument("--net", default=os.environ.get("FERRYMAN_BENCH_NET", "127.0.101"))
    parser.add_argument("--first", type=int, default=1, help="the first host's last octet")
    args = parser.parse_args()
    listing.parse = counting_parse  # type: ignore[assignment]

    base = Path(tempfile.mkdtemp(prefix="ferryman-bench-"))
    fleet = start_fleet(
        base / "fleet", args.hosts, network=args.net, first=args.first, tmpfs=not args.disk
    )
    git_host = add_host(fleet, "git", f"{args.net}.250")
    times: dict[str, list[float]] = {"on": [], "off": []}
    cpus: dict[str, list[float]] = {"on": [], "off": []}
    stages: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    checks: list[float] = []
    parses: list[int] = []
    try:
        hosts = [h for h in fleet.hosts if h.name != "git"]
        bare = git_host.root / "git" / "bench.git"
        bare.parent.mkdir(parents=True)
        generate_repo(base / "work", bare, args.files, args.mb, args.per_dir)
        home = base / "home"
        (home / "ssh").mkdir(parents=True)
        shutil.copy(fleet.client_key, home / "ssh" / "id_ed25519")
        shutil.copy(fleet.known_hosts, home / "ssh" / "known_hosts")
        settings = load_settings({"FERRYMAN_HOME": str(home)})
        db = Database(settings.database_url)
        db.upgrade()
        env = {
            "hosts": [h.address for h in hosts],
            "user": "root",
            "webroot": "/srv/www/bench",
            "releases": "/srv/releases/bench",
            "parallel": args.hosts,
            "keep_releases": 3,
        }
        config = {
            "project": "bench",
            "repo": f"ssh://root@{git_host.address}/srv/git/bench.git",
            "environments": {ENV: env},
        }
        projects.apply_project(db, ACTOR, parse_project(config))

        def run() -> dict[str, Any]:
            d = deploys.request_deploy(db, ACTOR, "bench", ENV, "master")
            claim = queue.claim(db, "bench")
            assert claim is not None and claim.id == d.id
            asyncio.run(run_deploy(db, settings, d.id, claim.holder))
            result = deploy_views.get(db, d.id)
            assert result["status"] == "success", result["error"]
            return result

        run()  # the first deploy: the live release every redeploy starts from
        for i in range(args.rounds):
            for mode in ("on", "off") if i % 2 == 0 else ("off", "on"):
                global parsed
                parsed = 0
                transfer.check_bases = CHECK if mode == "on" else no_check  # type: ignore[assignment]
                change_one_file(base / "work", bare)
                wall, cpu_s, result = measure(run)
                times[mode].append(wall)
                cpus[mode].append(cpu_s)
                stages[mode].append({s["name"]: s["duration"] for s in result["stages"]})
                if mode == "on":
                    steps = deploy_views.steps_of(db, result["id"])
                    checks += [
                        s["duration"] for s in steps if "against its manifest" in s["command"]
                    ]
                    parses.append(parsed)
                print(f"redeploy, check {mode}: {wall:.2f}s", file=sys.stderr)
    finally:
        fleet.stop()
        shutil.rmtree(base, ignore_errors=True)
    report(args, times, cpus, stages, checks, parses)


def report(
    args: argparse.Namespace,
    times: dict[str, list[float]],
    cpus: dict[str, list[float]],
    stages: dict[str, list[dict[str, float]]],
    checks: list[float],
    parses: list[int],
) -> None:
    med = {m: statistics.median(times[m]) for m in times}
    extra = med["on"] - med["off"]
    print(
        f"\none-file redeploy, {args.hosts} hosts, {args.files} files / {args.mb} MB, "
        f"{'disk' if args.disk else 'tmpfs'} /srv, {args.rounds} alternating pairs (medians):"
    )
    print("| delta base check | redeploy s | CPU s (deploy host) | checkout s | transfer s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for mode in ("off", "on"):
        st = stages[mode]
        checkout = statistics.median(s.get("checkout", 0.0) for s in st)
        moved = statistics.median(s.get("transfer", 0.0) for s in st)
        print(
            f"| {mode} | {med[mode]:.2f} | {statistics.median(cpus[mode]):.2f} | "
            f"{checkout:.2f} | {moved:.2f} |"
        )
    print(f"extra: {extra:+.2f}s = {100 * extra / med['off']:+.1f}%")
    paired = statistics.median(a - b for a, b in zip(times["on"], times["off"], strict=True))
    print(f"median of paired differences: {paired:+.2f}s = {100 * paired / med['off']:+.1f}%")
    cpu_extra = statistics.median(cpus["on"]) - statistics.median(cpus["off"])
    print(f"deploy-host CPU: {cpu_extra:+.2f}s")
    if checks:
        print(
            f"the check per host: median {statistics.median(checks):.2f}s, "
            f"max {max(checks):.2f}s; listings parsed per redeploy: {parses} "
            f"(of {args.hosts} hosts)"
        )
    print("all on:", " ".join(f"{t:.2f}" for t in times["on"]))
    print("all off:", " ".join(f"{t:.2f}" for t in times["off"]))


if __name__ == "__main__":
    main()
