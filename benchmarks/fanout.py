"""Tiered fan-out benchmark (issue 22): a first deploy to N hosts with and without
``transfer: {fanout: F}``, on one real fleet, in the same run.

    .venv/bin/python benchmarks/fanout.py --hosts 20 --fanout 8 --mb 20 [--rounds 1]
        [--net 127.0.121] [--disk] [--json out.json]

For each mode: the deploy host's bytes sent (the payload written into SSH channels — every
chunk of a package streamed and every stdin given — counted by wrapping the executor's feeder:
SSH's own framing and encryption, a few per cent, are not in it), the deploy host's CPU (this
process, which runs the deploy, and its children: git, tar, zstd — the hosts' sshd and the
relays' OpenSSH clients are not its children), and the wall time of the deploy. The package is
``--mb`` MB of random bytes (zstd cannot shrink it, so its size is the package's) and ten small
files. Each host has a tmpfs ``/srv`` unless ``--disk``. A fresh project per deploy, so every
deploy is a first deploy (the full package to every host). The hosts take ``<net>.1``…, the git
host ``<net>.250``. Needs root, like the test fleet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ferryman.config.project import parse_project
from ferryman.config.settings import load_settings
from ferryman.db.session import Database
from ferryman.jobs.deploy_job import run_deploy
from ferryman.remote import executor as executor_module
from ferryman.services import deploy_views, deploys, projects, queue
from ferryman.services.audit import Actor
from ferryman.testing.fleet import add_host
from ferryman.testing.relay_fleet import HOST_KEYS, start_relay_fleet

ACTOR = Actor(id=None, username="bench", is_superuser=True)
ENV = "staging"  # a seeded environment that needs no approval


class Sent:
    """Bytes the executor writes into SSH channels' stdin, counted in its feeder."""

    def __init__(self) -> None:
        self.bytes = 0
        self._feed = executor_module._feed

    def install(self) -> None:
        counter = self

        async def counted(
            stdin: Any, data: bytes | None, source: Path | None, on_progress: Any = None
        ) -> None:
            if source is not None:
                counter.bytes += os.stat(source).st_size
            elif data:
                counter.bytes += len(data)
            await counter._feed(stdin, data, source, on_progress)

        executor_module._feed = counted


def cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def make_repo(work: Path, bare: Path, megabytes: int) -> None:
    work.mkdir(parents=True)
    (work / "blob.bin").write_bytes(os.urandom(megabytes * 1_000_000))
    for i in range(10):
        (work / f"page{i}.html").write_text(f"page {i}\n")

    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=b", "-c", "user.email=b@x", *args],
            cwd=work,
            check=True,
            capture_output=True,
        )

    subprocess.run(["git", "init", "--bare", "-q", "-b", "master", str(bare)], check=True)
    git("init", "-q", "-b", "master")
    git("add", "-A")
    git("commit", "-q", "-m", "v1")
    git("push", "-q", str(bare), "HEAD:master")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--fanout", type=int, default=8)
    parser.add_argument("--mb", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1, help="off/on pairs (medians reported)")
    parser.add_argument("--parallel", type=int, default=50, help="the projects' `parallel`")
    parser.add_argument(
        "--connect-timeout", type=int, default=60, help="the projects' connect_timeout (s)"
    )
    parser.add_argument("--disk", action="store_true", help="disk-backed /srv instead of tmpfs")
    parser.add_argument("--net", default=os.environ.get("FERRYMAN_BENCH_NET", "127.0.121"))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="ferryman-bench-fanout-"))
    started = time.monotonic()
    fleet = start_relay_fleet(base / "fleet", args.hosts, args.net, 1, tmpfs=not args.disk)
    git_host = add_host(fleet, "git", f"{args.net}.250")
    print(f"fleet of {args.hosts} up in {time.monotonic() - started:.1f}s", file=sys.stderr)
    sent = Sent()
    sent.install()
    figures: dict[str, Any] = {
        "hosts": args.hosts,
        "fanout": args.fanout,
        "mb": args.mb,
        "parallel": args.parallel,
        "srv": "disk" if args.disk else "tmpfs",
        "machine": f"{platform.node()} {os.cpu_count()} cores",
        "load_before": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    try:
        hosts = [h for h in fleet.hosts if h.name != "git"]
        bare = git_host.root / "git" / "bench.git"
        bare.parent.mkdir(parents=True)
        make_repo(base / "work", bare, args.mb)
        home = base / "home"
        (home / "ssh").mkdir(parents=True)
        shutil.copy(fleet.client_key, home / "ssh" / "id_ed25519")
        shutil.copy(fleet.known_hosts, home / "ssh" / "known_hosts")
        settings = load_settings({"FERRYMAN_HOME": str(home)})
        db = Database(settings.database_url)
        db.upgrade()

        def first_deploy(name: str, fanout: int) -> dict[str, Any]:
            config = {
                "project": name,
                "repo": f"ssh://root@{git_host.address}/srv/git/bench.git",
                "environments": {
                    ENV: {
                        "hosts": [h.address for h in hosts],
                        "user": "root",
                        "webroot": f"/srv/www/{name}",
                        "releases": f"/srv/releases/{name}",
                        "parallel": args.parallel,
                        "connect_timeout": args.connect_timeout,
                        "transfer": {"fanout": fanout, "authorized_keys": HOST_KEYS},
                    }
                },
            }
            projects.apply_project(db, ACTOR, parse_project(config))
            d = deploys.request_deploy(db, ACTOR, name, ENV, "master")
            claim = queue.claim(db, "bench")
            assert claim is not None and claim.id == d.id
            bytes0, cpu0, t0 = sent.bytes, cpu(), time.perf_counter()
            asyncio.run(run_deploy(db, settings, d.id, claim.holder))
            wall, cpu_s, payload = time.perf_counter() - t0, cpu() - cpu0, sent.bytes - bytes0
            result = deploy_views.get(db, d.id)
            assert result["status"] == "success", result["error"]
            transfer = next(s for s in result["stages"] if s["name"] == "transfer")
            package = max(p["total"] for p in transfer["bytes"].values())
            fed = len(transfer["bytes"])
            fallbacks = sum(
                "sends it directly" in line["text"]
                for line in deploy_views.logs_after(db, d.id, limit=100000)
            )
            # every host switched (a tmpfs /srv is seen only inside its host's namespace)
            assert [h["status"] for h in result["hosts"]] == ["success"] * len(hosts)
            row = {
                "wall": round(wall, 2),
                "cpu": round(cpu_s, 2),
                "sent_mb": round(payload / 1e6, 1),
                "package_mb": round(package / 1e6, 2),
                "sent_per_package": round(payload / package, 2),
                "hosts_fed_by_deploy_host": fed,
                "fallbacks": fallbacks,
                "transfer_s": round(transfer["duration"], 2) if transfer.get("duration") else None,
            }
            print(f"{name}: {row}", file=sys.stderr)
            return row

        runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
        for i in range(args.rounds):
            order = [("off", 0), ("on", args.fanout)]
            if i % 2:
                order.reverse()
            for mode, fanout in order:
                runs[mode].append(first_deploy(f"b{mode}{i}", fanout))
        for mode, rows in runs.items():
            figures[mode] = {
                key: statistics.median(r[key] for r in rows)
                for key in ("wall", "cpu", "sent_mb", "sent_per_package", "fallbacks")
            } | {"package_mb": rows[0]["package_mb"], "fed": rows[0]["hosts_fed_by_deploy_host"]}
        figures["load_after"] = os.getloadavg()
    finally:
        fleet.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
