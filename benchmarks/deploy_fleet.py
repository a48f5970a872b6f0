"""Deploy benchmark on a real fleet: first deploy, one-file redeploy and rollback, against floors
measured in the same run.

    .venv/bin/python benchmarks/deploy_fleet.py --hosts 50 [--files 5000 --mb 50] [--disk]
        [--rounds 3] [--net 127.0.101]
    .venv/bin/python benchmarks/deploy_fleet.py --hosts 10 --sandbox-rounds 5 --only-sandbox

``--rounds N`` (3): N rounds of a one-file redeploy and a rollback, the medians reported (and
the ssh-true floor is the median of three). ``--net`` (or ``FERRYMAN_BENCH_NET``): the hosts
take ``<net>.1``…, the git host ``<net>.250``.

``--growth 20,50,100,200,500`` (issue 22): the same first deploy, one-file redeploy and
rollback at each size on one growing fleet spread over ``--nets`` (``--per-net`` hosts to a
/24; the git host is ``<first net>.250``), a fresh project per size, ``--parallel`` (50, the
default of a project), with the asyncssh ``true`` floor at each size. For each: wall time,
deploy-host CPU (this process — the worker, running the deploy in process — and its children:
git, tar, zstd), peak RSS, peak open fds and peak SSH connections of this process (sampled from
``/proc/self`` every 0.1 s; the sampler's own CPU is taken out), and the CPU growth per extra
host. The open-files soft limit is raised to the hard one first, as ``ferryman worker`` does.

    .venv/bin/python benchmarks/deploy_fleet.py --growth 20,50,100,200,500 --files 1000 --mb 10 \
        --nets 127.0.131,127.0.132,127.0.133

``--sandbox-rounds N``: N pairs of first deploys (a fresh project each, with a one-line
``post_deploy``), alternating the build sandbox on and off in the same run; medians reported.

Floors: (1) connect to every host and run ``true``, in parallel (asyncssh, as a deploy does; and
OpenSSH ``ssh true`` for reference); (2) the deploy's full package piped to every host into
``cat >/dev/null``. Each host has a tmpfs ``/srv`` unless ``--disk`` is given (all hosts here share
one virtual disk; real hosts have their own). Needs root, like the test fleet.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ferryman.config.project import parse_project
from ferryman.config.settings import load_settings
from ferryman.db.session import Database
from ferryman.jobs.deploy_job import run_deploy
from ferryman.limits import raise_open_files
from ferryman.remote.executor import Executor, Target, fan_out
from ferryman.services import deploy_views, deploys, projects, queue
from ferryman.services.audit import Actor
from ferryman.testing.fleet import add_host, start_fleet, wait_listening

ACTOR = Actor(id=None, username="bench", is_superuser=True)
ENV = "staging"  # a seeded environment that needs no approval
# fmt: off
WORDS = ["def", "class", "return", "import", "self", "value", "data", "list", "dict",
         "item", "key", "name", "path", "file", "user", "host", "deploy", "release", "build",
         "test", "config", "if", "else", "for", "while", "try", "except", "with", "lambda"]
# fmt: on


def cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def measure(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    c0, t0 = cpu(), time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, cpu() - c0, result


def generate_repo(work: Path, bare: Path, files: int, megabytes: int, per_dir: int) -> None:
    """``files`` text-like files, ``per_dir`` to a directory, ten directories to a package."""
    rng = random.Random(42)
    size = megabytes * 1_000_000 // files
    work.mkdir(parents=True)
    for i in range(files):
        folder = i // per_dir
        path = work / f"pkg{folder // 10:03d}" / f"mod{folder % 10}" / f"file{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        words = []
        total = 0
        while total < size:
            word = rng.choice(WORDS) if rng.random() < 0.7 else f"{rng.getrandbits(40):x}"
            words.append(word)
            total += len(word) + 1
        path.write_text(" ".join(words))

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=work, check=True, capture_output=True)

    subprocess.run(["git", "init", "--bare", "-q", "-b", "master", str(bare)], check=True)
    git("init", "-q", "-b", "master")
    git("-c", "user.name=b", "-c", "user.email=b@x", "add", "-A")
    git("-c", "user.name=b", "-c", "user.email=b@x", "commit", "-q", "-m", "v1")
    git("push", "-q", str(bare), "HEAD:master")


def change_one_file(work: Path, bare: Path) -> None:
    target = next(work.glob("pkg000/mod0/*.py"))
    target.write_text(target.read_text() + "\n# changed\n")
    for args in (
        ["add", "-A"],
        ["commit", "-q", "-m", "one file"],
        ["push", "-q", str(bare), "HEAD:master"],
    ):
        subprocess.run(
            ["git", "-c", "user.name=b", "-c", "user.email=b@x", *args],
            cwd=work,
            check=True,
            capture_output=True,
        )


async def floor_ssh_true(key: Path, known: Path, targets: list[Target]) -> None:
    ex = Executor(client_key=key, known_hosts=known)
    try:
        failures = await fan_out(targets, lambda t: _true(ex, t), 200)
        assert not failures, failures
    finally:
        await ex.close()


async def _true(ex: Executor, target: Target) -> None:
    await ex.run(target, ("true",), stage="floor", timeout=60)


async def floor_pipe(key: Path, known: Path, targets: list[Target], package: Path) -> None:
    ex = Executor(client_key=key, known_hosts=known)

    async def one(target: Target) -> None:
        await ex.run(
            target, ("sh", "-c", "cat >/dev/null"), stage="floor", timeout=600, source=package
        )

    try:
        failures = await fan_out(targets, one, 50)
        assert not failures, failures
    finally:
        await ex.close()


async def floor_unpack(key: Path, known: Path, targets: list[Target], package: Path) -> None:
    """The hosts' own share of a first deploy: the package piped into ``tar -x`` on every host
    (decompress, create every file) — what the pipe floor leaves out."""
    ex = Executor(client_key=key, known_hosts=known)
    script = (
        "set -e; d=/srv/unpack-floor; rm -rf $d; mkdir -p $d; tar -I zstd -xf - -C $d; rm -rf $d"
    )

    async def one(target: Target) -> None:
        await ex.run(target, ("bash", "-c", script), stage="floor", timeout=600, source=package)

    try:
        failures = await fan_out(targets, one, 50)
        assert not failures, failures
    finally:
        await ex.close()


async def floor_link(key: Path, known: Path, targets: list[Target], release: str) -> None:
    """Connect and hard-link-copy the live release on every host: the work any link-dest
    style delta must do per host (one mkdir or link per entry)."""
    ex = Executor(client_key=key, known_hosts=known)
    src = f"/srv/releases/bench/{release}"
    dst = "/srv/releases/bench/.link-floor"

    async def one(target: Target) -> None:
        await ex.run(target, ("cp", "-al", "--", src, dst), stage="floor", timeout=600)

    try:
        failures = await fan_out(targets, one, 200)
        assert not failures, failures
    finally:
        await ex.close()


def remove_floor_dir(key: Path, known: Path, targets: list[Target], name: str) -> None:
    """Remove what a floor measurement left on every host (not timed)."""

    async def run() -> None:
        ex = Executor(client_key=key, known_hosts=known)
        path = f"/srv/releases/bench/{name}"
        try:
            await fan_out(
                targets, lambda t: ex.run(t, ("rm", "-rf", path), stage="x", timeout=600), 200
            )
        finally:
            await ex.close()

    asyncio.run(run())


def openssh_true(key: Path, known: Path, addresses: list[str]) -> None:
    procs = [
        subprocess.Popen(
            [
                "ssh",
                "-i",
                str(key),
                "-o",
                f"UserKnownHostsFile={known}",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                f"root@{a}",
                "true",
            ]
        )
        for a in addresses
    ]
    assert all(p.wait() == 0 for p in procs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument(
        "--per-dir", type=int, default=10, help="files per directory (1: a directory per file)"
    )
    parser.add_argument("--disk", action="store_true", help="disk-backed /srv instead of tmpfs")
    parser.add_argument("--compress", choices=["yes", "no"], default="yes")
    parser.add_argument("--net", default=os.environ.get("FERRYMAN_BENCH_NET", "127.0.101"))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--rounds", type=int, default=3, help="redeploy + rollback rounds (medians reported)"
    )
    parser.add_argument("--sandbox-rounds", type=int, default=0, help="sandbox on/off pairs")
    parser.add_argument("--only-sandbox", action="store_true", help="only the sandbox pairs")
    parser.add_argument(
        "--growth", help="host counts, e.g. 20,50,100,200,500: the growth curve (issue 22)"
    )
    parser.add_argument(
        "--nets",
        default=os.environ.get("FERRYMAN_BENCH_NETS", "127.0.101,127.0.102,127.0.103"),
        help="/24s the growth fleet spreads over (--per-net hosts each; the git host: .250)",
    )
    parser.add_argument("--per-net", type=int, default=200)
    parser.add_argument(
        "--parallel", type=int, default=50, help="the growth's `parallel` (0: the host count)"
    )
    args = parser.parse_args()
    if args.growth:
        growth(args)
        return

    base = Path(tempfile.mkdtemp(prefix="ferryman-bench-"))
    fleet = start_fleet(base / "fleet", args.hosts, network=args.net, tmpfs=not args.disk)
    git_host = add_host(fleet, "git", f"{args.net}.250")
    figures: dict[str, Any] = {
        "hosts": args.hosts,
        "files": args.files,
        "mb": args.mb,
        "per_dir": args.per_dir,
        "srv": "disk" if args.disk else "tmpfs",
        "compress": args.compress,
    }
    try:
        hosts = [h for h in fleet.hosts if h.name != "git"]
        print(f"generating {args.files} files / {args.mb} MB …", file=sys.stderr)
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
                    "compress": args.compress == "yes",
                }
            },
        }
        projects.apply_project(db, ACTOR, parse_project(config))

        def run(kind: str, settings: Any = settings, **kw: Any) -> dict[str, Any]:
            if kind == "emergency":
                d = deploys.request_rollback(db, ACTOR, "bench", ENV, kw["to"], emergency=True)
            elif kind == "rollback":
                d = deploys.request_rollback(db, ACTOR, "bench", ENV, None)
            else:
                d = deploys.request_deploy(db, ACTOR, kw.get("project", "bench"), ENV, "master")
            claim = queue.claim(db, "bench")
            assert claim is not None and claim.id == d.id
            asyncio.run(run_deploy(db, settings, d.id, claim.holder))
            result = deploy_views.get(db, d.id)
            assert result["status"] == "success", result["error"]
            return result

        if args.sandbox_rounds:
            figures["sandbox"] = sandbox_pairs(db, settings, config, args.sandbox_rounds, run)
        if args.only_sandbox:
            return
        targets = [Target(h.address, h.address, 22, "root") for h in hosts]
        key, known = fleet.client_key, fleet.known_hosts
        trues = [
            measure(lambda: asyncio.run(floor_ssh_true(key, known, targets))) for _ in range(3)
        ]
        wall, cpu_s, _ = sorted(trues, key=lambda t: t[0])[1]  # the median of three
        figures["floor_ssh_true_asyncssh"] = {"wall": wall, "cpu": cpu_s}
        wall, cpu_s, _ = measure(lambda: openssh_true(key, known, [t.address for t in targets]))
        figures["floor_ssh_true_openssh"] = {"wall": wall, "cpu": cpu_s}

        wall, cpu_s, first = measure(lambda: run("deploy"))
        figures["first_deploy"] = {"wall": wall, "cpu": cpu_s, "stages": _stages(first)}
        # the package of the first deploy, rebuilt the same way, for the piping floor
        package = _package(settings, first, config)
        figures["package_mb"] = package.stat().st_size / 1e6
        wall, cpu_s, _ = measure(lambda: asyncio.run(floor_pipe(key, known, targets, package)))
        figures["floor_pipe"] = {"wall": wall, "cpu": cpu_s}
        if config["environments"][ENV]["compress"]:
            unpack = lambda: asyncio.run(floor_unpack(key, known, targets, package))  # noqa: E731
            wall, cpu_s, _ = measure(unpack)
            figures["floor_unpack"] = {"wall": wall, "cpu": cpu_s}
            remove_floor_dir(key, known, targets, ".unpack-floor")

        link = lambda: asyncio.run(floor_link(key, known, targets, first["release"]))  # noqa: E731
        wall, cpu_s, _ = measure(link)
        figures["floor_link"] = {"wall": wall, "cpu": cpu_s}
        remove_floor_dir(key, known, targets, ".link-floor")

        redeploys: list[tuple[dict[str, Any], dict[str, Any]]] = []
        rollbacks: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for _ in range(args.rounds):  # each round: one file changed, deployed, rolled back
            change_one_file(base / "work", bare)
            wall, cpu_s, second = measure(lambda: run("deploy"))
            redeploys.append(({"wall": wall, "cpu": cpu_s, "stages": _stages(second)}, second))
            wall, cpu_s, back = measure(lambda: run("rollback"))
            rollbacks.append(({"wall": wall, "cpu": cpu_s, "stages": _stages(back)}, back))
        figures["redeploy_one_file"], second = _median(redeploys)
        figures["redeploy_steps"] = _steps(db, second["id"])
        figures["redeploy_round_trips"] = _round_trips(db, second["id"], len(hosts))
        figures["rollback"], _ = _median(rollbacks)
        wall, cpu_s, urgent = measure(lambda: run("emergency", to=second["release"]))
        figures["emergency_rollback"] = {"wall": wall, "cpu": cpu_s, "stages": _stages(urgent)}
    finally:
        fleet.stop()
        shutil.rmtree(base, ignore_errors=True)
        if args.only_sandbox:
            report_sandbox(figures)
    if args.only_sandbox:
        return
    report(figures)
    if "sandbox" in figures:
        report_sandbox(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


def sandbox_pairs(
    db: Database, settings: Any, config: dict[str, Any], rounds: int, run: Callable[..., Any]
) -> dict[str, Any]:
    """First deploys of fresh projects (same repository, so the mirror is warm after the
    first, unmeasured one), alternating sandbox on and off; a one-line build hook in each."""
    modes = {
        "on": dataclasses.replace(settings, sandbox="auto"),
        "off": dataclasses.replace(settings, sandbox="off"),
    }
    times: dict[str, list[float]] = {"on": [], "off": []}
    stages: dict[str, list[dict[str, float]]] = {"on": [], "off": []}

    def first(name: str, mode: str) -> tuple[float, dict[str, Any]]:
        env = dict(config["environments"][ENV])
        env |= {"webroot": f"/srv/www/{name}", "releases": f"/srv/releases/{name}"}
        env["tasks"] = {"post_deploy": "echo built > .built\n"}
        cfg = {**config, "project": name, "environments": {ENV: env}}
        projects.apply_project(db, ACTOR, parse_project(cfg))
        wall, _, result = measure(lambda: run("deploy", modes[mode], project=name))
        return wall, result

    first("bench-warm", "on")  # clones the mirror, probes bwrap once
    for i in range(rounds):
        order = ("on", "off") if i % 2 == 0 else ("off", "on")
        for mode in order:
            wall, result = first(f"bench-s{i}-{mode}", mode)
            times[mode].append(wall)
            stages[mode].append(_stages(result))
            print(f"sandbox {mode}: {wall:.2f}s", file=sys.stderr)
    deltas = [a - b for a, b in zip(times["on"], times["off"], strict=True)]
    out: dict[str, Any] = {"rounds": rounds, "paired_delta": statistics.median(deltas)}
    for mode in ("on", "off"):
        out[mode] = {
            "median": statistics.median(times[mode]),
            "all": times[mode],
            "stages": {
                k: statistics.median(s[k] for s in stages[mode] if k in s)
                for k in ("checkout", "post_deploy")
            },
        }
    return out


def report_sandbox(f: dict[str, Any]) -> None:
    if "sandbox" not in f:
        return
    s = f["sandbox"]
    on, off = s["on"], s["off"]
    extra = on["median"] - off["median"]
    print(
        f"\nbuild sandbox, {f['hosts']} hosts, {s['rounds']} alternating pairs of first deploys "
        f"(medians):\n| sandbox | first deploy s | checkout s | post_deploy s |\n"
        f"| --- | ---: | ---: | ---: |"
    )
    for name, fig in (("off", off), ("on", on)):
        st = fig["stages"]
        print(f"| {name} | {fig['median']:.2f} | {st['checkout']:.3f} | {st['post_deploy']:.3f} |")
    print(f"extra: {extra:+.3f}s = {100 * extra / off['median']:+.1f}% (target ≤ 5%)")
    paired = s["paired_delta"]
    print(f"median of paired differences: {paired:+.3f}s = {100 * paired / off['median']:+.1f}%")
    stage_extra = sum(on["stages"][k] - off["stages"][k] for k in ("checkout", "post_deploy"))
    print(
        f"sandboxed stages (checkout + post_deploy): {stage_extra:+.3f}s = "
        f"{100 * stage_extra / off['median']:+.1f}% of the first deploy"
    )
    print("all on:", " ".join(f"{t:.2f}" for t in on["all"]))
    print("all off:", " ".join(f"{t:.2f}" for t in off["all"]))


def _steps(db: Database, deploy_id: int) -> dict[str, dict[str, float]]:
    """Per stage and command: how many ran, mean and max seconds (where the time goes)."""
    out: dict[str, list[float]] = {}
    for step in deploy_views.steps_of(db, deploy_id):
        words = step["command"].split()
        label = f"{step['stage']}: {' '.join(words[:1])[:40]}"
        out.setdefault(label, []).append(step["duration"])
    return {
        k: {"n": len(v), "mean": sum(v) / len(v), "max": max(v)} for k, v in sorted(out.items())
    }


def _median(
    rounds: list[tuple[dict[str, Any], dict[str, Any]]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The round with the median wall time (its stages and record), and every round's time."""
    ordered = sorted(rounds, key=lambda r: r[0]["wall"])
    figure, record = ordered[(len(ordered) - 1) // 2]
    return figure | {"all": [r[0]["wall"] for r in rounds]}, record


def _round_trips(db: Database, deploy_id: int, hosts: int) -> float:
    """Remote commands per host (each one SSH round trip on the host's one connection)."""
    return len(deploy_views.steps_of(db, deploy_id)) / hosts


def _stages(result: dict[str, Any]) -> dict[str, float]:
    return {s["name"]: s["duration"] for s in result["stages"]}


def _package(settings: Any, first: dict[str, Any], config: dict[str, Any]) -> Path:
    """Rebuild the full package of the first deploy from its live release on host 1."""
    from ferryman.pipeline.package import build_manifest, choose_compression, write_package
    from ferryman.vcs.factory import mirror_path

    tree = settings.home / "pkgtree"
    name = mirror_path(settings.repo_cache, config["repo"]).name  # under the space's own dir
    mirror = next(settings.repo_cache.glob(f"*/{name}"))
    subprocess.run(["git", "clone", "-q", str(mirror), str(tree)], check=True)
    subprocess.run(["git", "-C", str(tree), "checkout", "-q", first["commit"]], check=True)
    manifest = build_manifest(tree, [])
    out = settings.home / "package.tar"
    write_package(
        tree,
        sorted(manifest),
        manifest,
        "bench\n",
        out,
        # as the deploy chose: every host here has zstd (they share this machine's binaries)
        choose_compression(config["environments"][ENV]["compress"], 1, 1),
    )
    return out


def report(f: dict[str, Any]) -> None:
    floor_true = f["floor_ssh_true_asyncssh"]["wall"]
    floor_pipe_s = f["floor_pipe"]["wall"]
    build = f["redeploy_one_file"]["stages"].get("checkout", 0) + f["redeploy_one_file"][
        "stages"
    ].get("post_deploy", 0)
    rows = [
        ("floor: ssh true, asyncssh (connect + run)", f["floor_ssh_true_asyncssh"], ""),
        ("floor: ssh true, OpenSSH processes", f["floor_ssh_true_openssh"], ""),
        (f"floor: package ({f['package_mb']:.1f} MB) piped to cat", f["floor_pipe"], ""),
        ("floor: connect + cp -al of the release", f["floor_link"], ""),
        *(
            [("floor: package piped into tar -x", f["floor_unpack"], "")]
            if "floor_unpack" in f
            else []
        ),
        (
            "first deploy",
            f["first_deploy"],
            f"{f['first_deploy']['wall'] / floor_pipe_s:.2f}× pipe floor (target ≤ 2×)"
            + (
                f"; {f['first_deploy']['wall'] / f['floor_unpack']['wall']:.2f}× unpack floor"
                if "floor_unpack" in f
                else ""
            ),
        ),
        (
            "redeploy, one file changed",
            f["redeploy_one_file"],
            f"{(f['redeploy_one_file']['wall'] - build) / floor_true:.2f}× ssh-true floor "
            f"+ checkout {build:.2f}s (target ≤ 3×); "
            f"{(f['redeploy_one_file']['wall'] - build) / f['floor_link']['wall']:.2f}× link floor",
        ),
        (
            "rollback",
            f["rollback"],
            f"{f['rollback']['wall'] / floor_true:.2f}× ssh-true floor (target ≤ 3×)",
        ),
        (
            "emergency rollback (all hosts at once, no hooks)",
            f["emergency_rollback"],
            f"{f['emergency_rollback']['wall'] / floor_true:.2f}× ssh-true floor (target ≤ 2×)",
        ),
    ]
    print(
        f"\n{f['hosts']} hosts, {f['files']} files ({f['per_dir']} per directory) / "
        f"{f['mb']} MB, /srv on {f['srv']}, "
        f"compress={f['compress']}\n"
    )
    print(f"| {'what':<44} | {'wall s':>7} | {'CPU s':>6} | ratio |")
    print(f"|{'-' * 46}|{'-' * 9}|{'-' * 8}|-------|")
    for name, fig, ratio in rows:
        print(f"| {name:<44} | {fig['wall']:7.2f} | {fig['cpu']:6.2f} | {ratio} |")
    for name in ("first_deploy", "redeploy_one_file", "rollback", "emergency_rollback"):
        stages = ", ".join(f"{k} {v:.2f}" for k, v in f[name]["stages"].items())
        print(f"\n{name} stages (s): {stages}")
        if "all" in f[name]:
            print(f"{name} every round (s): " + ", ".join(f"{t:.2f}" for t in f[name]["all"]))
    print(f"\nredeploy: {f['redeploy_round_trips']:.1f} remote commands per host")
    print("\nredeploy commands (count, mean s, max s):")
    for label, step in f["redeploy_steps"].items():
        print(f"  {label:<48} {step['n']:4d} {step['mean']:7.3f} {step['max']:7.3f}")


# --- growth curve (issue 22): the same deploys at 20, 50, 100, 200, 500 hosts ---------------


class Sampler(threading.Thread):
    """Samples this process (the deploy host: the worker running the deploy in process) every
    ``interval`` s: open fds, RSS, and SSH connections (its own established TCP sockets to
    port 22). Its own CPU (thread time) is kept so that it can be taken out of the figures."""

    def __init__(self, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.own_cpu = 0.0
        self.peaks = {"fds": 0, "ssh": 0, "rss_mb": 0.0}

    def run(self) -> None:
        start = time.thread_time()
        while not self.stopping.wait(self.interval):
            self.sample()
            with self.lock:
                self.own_cpu = time.thread_time() - start

    def sample(self) -> None:
        inodes: set[str] = set()
        fds = 0
        for fd in os.listdir("/proc/self/fd"):
            fds += 1
            try:
                link = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
        ssh = 0
        for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
            with open(table) as fh:
                next(fh)
                for row in fh:
                    cols = row.split()
                    # remote port 22, ESTABLISHED, one of ours
                    if cols[2].endswith(":0016") and cols[3] == "01" and cols[9] in inodes:
                        ssh += 1
        rss = _status_kb("VmRSS") / 1024
        with self.lock:
            peaks = self.peaks
            peaks["fds"] = max(peaks["fds"], fds)
            peaks["ssh"] = max(peaks["ssh"], ssh)
            peaks["rss_mb"] = max(peaks["rss_mb"], rss)

    def take(self) -> tuple[dict[str, float], float]:
        """The peaks since the last take (then reset), and the sampler's CPU so far."""
        self.sample()
        with self.lock:
            peaks, self.peaks = dict(self.peaks), {"fds": 0, "ssh": 0, "rss_mb": 0.0}
            return peaks, self.own_cpu


def _status_kb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for row in fh:
            if row.startswith(field + ":"):
                return float(row.split()[1])
    return 0.0


def _reset_peak_rss() -> None:
    """Reset VmHWM, so that it is the peak of the next phase alone (Linux ≥ 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def measured(sampler: Sampler, fn: Callable[[], Any]) -> tuple[dict[str, float], Any]:
    """Wall, deploy-host CPU (this process and its waited children: git, tar, zstd; the
    sampler's own CPU taken out), peak RSS (VmHWM), peak fds and peak SSH connections."""
    sampler.take()
    _reset_peak_rss()
    _, own0 = sampler.take()
    c0, t0 = cpu(), time.perf_counter()
    result = fn()
    wall, used = time.perf_counter() - t0, cpu() - c0
    peaks, own1 = sampler.take()
    hwm = _status_kb("VmHWM") / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    figure = {
        "wall": wall,
        "cpu": used - (own1 - own0),
        "rss_mb": max(hwm, peaks["rss_mb"]),
        "child_rss_mb": kids,
        "fds": peaks["fds"],
        "ssh": peaks["ssh"],
    }
    return figure, result


def growth(args: argparse.Namespace) -> None:
    """Every size on one fleet that grows: hosts are added, a fresh project per size (so each
    first deploy is a first deploy on every host); the hosts' releases of a size are removed
    before the next, so tmpfs holds one size's releases at a time."""
    sizes = [int(s) for s in args.growth.split(",")]
    nets = args.nets.split(",")
    per_net = args.per_net
    if max(sizes) > per_net * len(nets):
        raise SystemExit(f"{max(sizes)} hosts need {max(sizes) / per_net:.0f} /24s (--nets)")
    soft, hard = raise_open_files()
    base = Path(tempfile.mkdtemp(prefix="ferryman-growth-"))
    fleet = start_fleet(base / "fleet", 0, network=nets[0])
    sampler = Sampler()
    sampler.start()
    figures: dict[str, Any] = {
        "sizes": sizes,
        "files": args.files,
        "mb": args.mb,
        "parallel": args.parallel,
        "nofile": [soft, hard],
        "nproc": os.cpu_count(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "load": [os.getloadavg()],
        "rows": [],
    }
    try:
        git_host = add_host(fleet, "git", f"{nets[0]}.250")
        bare = git_host.root / "git" / "bench.git"
        bare.parent.mkdir(parents=True)
        print(f"generating {args.files} files / {args.mb} MB …", file=sys.stderr, flush=True)
        generate_repo(base / "work", bare, args.files, args.mb, args.per_dir)
        home = base / "home"
        (home / "ssh").mkdir(parents=True)
        shutil.copy(fleet.client_key, home / "ssh" / "id_ed25519")
        settings = load_settings({"FERRYMAN_HOME": str(home)})
        db = Database(settings.database_url)
        db.upgrade()
        key, known = fleet.client_key, fleet.known_hosts
        hosts: list[Any] = []

        def grow(count: int) -> None:
            started = len(hosts)
            for i in range(started, count):
                net, last = nets[i // per_net], i % per_net + 1
                hosts.append(add_host(fleet, f"h{i + 1}", f"{net}.{last}", tmpfs=True, wait=False))
            deadline = time.monotonic() + 30 + count * 0.1
            for host in hosts[started:]:
                wait_listening(host.address, deadline)
            shutil.copy(known, home / "ssh" / "known_hosts")

        def project(name: str, count: int) -> None:
            config = {
                "project": name,
                "repo": f"ssh://root@{git_host.address}/srv/git/bench.git",
                "environments": {
                    ENV: {
                        "hosts": [h.address for h in hosts[:count]],
                        "user": "root",
                        "webroot": f"/srv/www/{name}",
                        "releases": f"/srv/releases/{name}",
                        "parallel": args.parallel or count,  # 0: every host at once
                    }
                },
            }
            projects.apply_project(db, ACTOR, parse_project(config))

        def run(kind: str, name: str) -> dict[str, Any]:
            if kind == "rollback":
                d = deploys.request_rollback(db, ACTOR, name, ENV, None)
            else:
                d = deploys.request_deploy(db, ACTOR, name, ENV, "master")
            claim = queue.claim(db, "bench")
            if claim is None or claim.id != d.id:
                raise RuntimeError(f"deploy #{d.id} not claimed")
            asyncio.run(run_deploy(db, settings, d.id, claim.holder))
            result = deploy_views.get(db, d.id)
            if result["status"] != "success":
                raise RuntimeError(f"{kind} at {name}: {result['status']}: {result['error']}")
            return result

        # warm the repository mirror once, unmeasured: every size then checks out the same way
        grow(min(sizes))
        project("gwarm", 2)
        run("deploy", "gwarm")
        for count in sizes:
            grow(count)
            targets = [Target(h.address, h.address, 22, "root") for h in hosts[:count]]
            name = f"g{count}"
            project(name, count)
            row: dict[str, Any] = {"hosts": count, "load_before": os.getloadavg()}
            trues = [
                measured(sampler, lambda t=targets: asyncio.run(floor_ssh_true(key, known, t)))[0]
                for _ in range(3)
            ]
            row["floor_true"] = sorted(trues, key=lambda f: f["wall"])[1]
            row["first"], first = measured(sampler, lambda n=name: run("deploy", n))
            row["first_stages"] = _stages(first)
            change_one_file(base / "work", bare)
            row["redeploy"], second = measured(sampler, lambda n=name: run("deploy", n))
            row["redeploy_stages"] = _stages(second)
            row["rollback"], back = measured(sampler, lambda n=name: run("rollback", n))
            row["rollback_stages"] = _stages(back)
            row["load_after"] = os.getloadavg()
            figures["rows"].append(row)
            figures["load"].append(os.getloadavg())
            print(growth_row(row), file=sys.stderr, flush=True)
            remove_project_dirs(key, known, targets, name)
        figures["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    finally:
        sampler.stopping.set()
        fleet.stop()
        time.sleep(1)
        subprocess.run(["rm", "-rf", str(base)], check=False)
    report_growth(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


def remove_project_dirs(key: Path, known: Path, targets: list[Target], name: str) -> None:
    """Free the hosts' tmpfs of one size's releases before the next size (not timed)."""

    async def go() -> None:
        ex = Executor(client_key=key, known_hosts=known)
        dirs = (f"/srv/releases/{name}", f"/srv/www/{name}")
        try:
            await fan_out(
                targets,
                lambda t: _discard(ex.run(t, ("rm", "-rf", *dirs), stage="x", timeout=600)),
                100,
            )
        finally:
            await ex.close()

    asyncio.run(go())


async def _discard(work: Any) -> None:
    await work


def growth_row(row: dict[str, Any]) -> str:
    cells = [f"{row['hosts']:>4} hosts"]
    for name in ("floor_true", "first", "redeploy", "rollback"):
        f = row[name]
        cells.append(
            f"{name} {f['wall']:.2f}s {f['cpu']:.2f}cpu {f['rss_mb']:.0f}MB "
            f"{f['fds']}fd {f['ssh']}ssh"
        )
    return " | ".join(cells)


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def report_growth(f: dict[str, Any]) -> None:
    rows = f["rows"]
    print(
        f"\ngrowth: {f['files']} files / {f['mb']} MB, parallel {f['parallel']}, "
        f"RLIMIT_NOFILE {f['nofile'][0]}/{f['nofile'][1]}, {f['nproc']} CPUs, "
        f"{f['started']} → {f.get('finished', '?')}\n"
    )
    print("| hosts | what | wall s | deploy-host CPU s | peak RSS MB | peak fds | peak SSH conns |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    labels = {
        "floor_true": "floor: asyncssh connect + `true`",
        "first": "first deploy",
        "redeploy": "one-file redeploy",
        "rollback": "rollback",
    }
    for row in rows:
        for name, label in labels.items():
            g = row[name]
            print(
                f"| {row['hosts']} | {label} | {g['wall']:.2f} | {g['cpu']:.2f} | "
                f"{g['rss_mb']:.0f} | {g['fds']} | {g['ssh']} |"
            )
    for name, label in labels.items():
        points = [(r["hosts"], r[name]["cpu"]) for r in rows]
        if len(points) > 1:
            first, last = points[0], points[-1]
            ends = (last[1] - first[1]) / (last[0] - first[0])
            print(
                f"{label}: CPU growth {slope(points):.4f} CPU-s per extra host (least squares), "
                f"{ends:.4f} from {first[0]} to {last[0]} hosts"
            )
    for row in rows:
        print(
            f"{row['hosts']} hosts: load {row['load_before'][0]:.1f} → {row['load_after'][0]:.1f}; "
            + "; ".join(
                f"{k}: " + ", ".join(f"{s} {v:.2f}" for s, v in row[f"{k}_stages"].items())
                for k in ("first", "redeploy", "rollback")
            )
        )


if __name__ == "__main__":
    main()
