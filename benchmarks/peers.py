"""Issue 22's table in one run: Ferryman beside Capistrano and Ansible on the same fleet, with
the floors, every figure measured here and now.

    .venv/bin/python benchmarks/peers.py [--hosts 20] [--files 5000 --mb 50] [--rounds 3]
        [--net 127.0.150] [--only ferryman,capistrano,ansible] [--json FILE]

One fleet (``--hosts`` real sshd hosts on tmpfs ``/srv`` at ``<net>.1``…, a git host at
``<net>.250``, the Ferryman server at ``<net>.200``) and one generated repository
(``--files`` text-like files / ``--mb`` MB, pushed to the git host). Then, in this order:

- **floors**: connect to every host and run ``true`` (asyncssh, as a deploy connects; the median
  of three); the whole tree as one zstd tar piped into ``tar -x`` on every host in parallel (the
  *push+untar floor*: what any build-once-and-push deploy must at least do);
- **Ferryman**, as a person uses it: a real ``ferryman serve`` (embedded worker, SQLite — the
  default install) and the CLI: ``ferryman deploy … --wait`` for the first deploy, then
  ``--rounds`` rounds of one file changed and pushed, ``deploy … --wait`` and
  ``rollback … --wait``, each timed from the CLI's start to its exit;
- **Capistrano** (``cap``, Debian's 3.17; git strategy: every host mirrors the repository from
  the git host over SSH with the deploy key forwarded, then ``git archive`` into the release;
  rollback as it ships, archiving the rolled-back release) — the same rounds;
- **Ansible** (``ansible-playbook``, forks = the host count, pipelining, ControlPersist): the
  tree built once on the deploy host (``git archive`` to a tar.gz), ``unarchive`` into a new
  release on every host, ``current`` switched with ``file: state=link``; rollback points
  ``current`` at the release before it — the same rounds.

Deploy-host CPU is user+system seconds of everything that runs on the deploy host for it: the
Ferryman server process and its children (git, tar, zstd) plus the CLI process; ``cap`` and its
children; ``ansible-playbook`` and its children (forks, ssh). Each tool's directories on the
hosts are removed before the next tool starts, so each sees the same hosts. Needs root (the
fleet), and ``cap`` and ``ansible-playbook`` (``apt-get install capistrano ansible-core``;
``--only ferryman`` runs without them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploy_fleet import change_one_file, floor_ssh_true, floor_unpack, generate_repo

from ferryman.commands import integrity
from ferryman.commands.remote import Layout
from ferryman.remote.executor import Executor, Target, fan_out
from ferryman.testing.fleet import Fleet, FleetHost, add_host
from ferryman.testing.relay_fleet import HOST_KEYS, start_relay_fleet

FERRYMAN = shutil.which("ferryman", path=os.path.dirname(sys.executable)) or "ferryman"
PASSWORD = "benchmark password 1"
ENV = "staging"  # a seeded environment that needs no approval
PEERS = ("ferryman", "capistrano", "ansible")
PROJECTS = ("bench", "solo", "relay")  # the Ferryman projects: every host, one host, fan-out
FANOUT = 4  # the relay project's transfer.fanout
TICK = os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def process_cpu(pid: int) -> float:
    """User+system seconds of a running process and of its children it has waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime + cutime + cstime) / TICK


def hosts_cpu(hosts: list[FleetHost]) -> float:
    """User+system seconds the hosts have spent (each host's sshd and every session it ran),
    once the sessions of the last command have ended: what the hosts' own CPUs would carry
    on a real fleet, here taken from the deploy host's two cores."""
    total = 0.0
    for host in hosts:
        pid = host.pid()
        if pid is None:
            continue
        children = Path(f"/proc/{pid}/task/{pid}/children")
        deadline = time.monotonic() + 10
        while children.read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.05)
        total += process_cpu(pid)
    return total


def run(
    argv: list[str], env: dict[str, str], cwd: Path | None = None, timeout: float = 1800
) -> tuple[float, float, str]:
    """(wall s, CPU s of the command and its children, stdout); it must succeed."""
    cpu, started = children_cpu(), time.perf_counter()
    done = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[:4])}…: exit {done.returncode}\n{done.stdout[-3000:]}\n"
            f"{done.stderr[-3000:]}"
        )
    return wall, children_cpu() - cpu, done.stdout


def median_of(rounds: list[dict[str, float]]) -> dict[str, Any]:
    """The round with the median wall time, and every round's wall time."""
    ordered = sorted(rounds, key=lambda r: r["wall"])
    return {**ordered[len(ordered) // 2], "all": [r["wall"] for r in rounds]}


async def _remove(fleet: Fleet, hosts: list[FleetHost], path: str) -> None:
    ex = Executor(client_key=fleet.client_key, known_hosts=fleet.known_hosts)

    async def one(target: Target) -> None:
        await ex.run(target, ("rm", "-rf", "--", path), stage="cleanup", timeout=600)

    try:
        targets = [Target(h.address, h.address, 22, "root") for h in hosts]
        failures = await fan_out(targets, one, 50)
        assert not failures, failures
    finally:
        await ex.close()


def remove(fleet: Fleet, hosts: list[FleetHost], *paths: str) -> None:
    for path in paths:
        asyncio.run(_remove(fleet, hosts, path))


def tree_package(bare: Path, out: Path, fmt: str) -> Path:
    """The tree of master as one tar (``fmt`` ``zst`` or ``tar.gz``), as a build would ship it."""
    if fmt == "zst":
        archive = subprocess.run(
            ["git", "--git-dir", str(bare), "archive", "--format=tar", "master"],
            capture_output=True,
            check=True,
            timeout=600,
        ).stdout
        subprocess.run(
            ["zstd", "-q", "-3", "-T0", "-f", "-o", str(out)],
            input=archive,
            check=True,
            timeout=600,
        )
    else:
        subprocess.run(
            ["git", "--git-dir", str(bare), "archive", "--format=tar.gz", "-o", str(out), "master"],
            check=True,
            timeout=600,
        )
    return out


# --- Ferryman: a real server and the CLI --------------------------------------------------


def ferryman(
    args: argparse.Namespace,
    base: Path,
    fleet: Fleet,
    hosts: list[FleetHost],
    git_address: str,
    work: Path,
    bare: Path,
) -> dict[str, Any]:
    home = base / "ferryman-home"
    (home / "ssh").mkdir(parents=True)
    if args.home_on_tmpfs:  # the build's files written to memory, not this machine's disk
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4g", "tmpfs", str(home)], check=True)
        (home / "ssh").mkdir()
    shutil.copy(fleet.client_key, home / "ssh" / "id_ed25519")
    shutil.copy(fleet.known_hosts, home / "ssh" / "known_hosts")
    env = {**os.environ, "FERRYMAN_HOME": str(home), "XDG_CONFIG_HOME": str(base / "cfg")}
    for name in ("FERRYMAN_URL", "FERRYMAN_TOKEN", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    env["PYTHONPYCACHEPREFIX"] = str(base / "pycache")  # as an installed package has
    run([FERRYMAN, "admin", "create-user", "bench", "--password", PASSWORD, "--superuser"], env)
    address = f"{args.net}.200"
    with socket.socket() as s:
        s.bind((address, 0))
        port = int(s.getsockname()[1])
    url = f"http://{address}:{port}"
    server = subprocess.Popen(
        [
            FERRYMAN,
            "serve",
            "--host",
            address,
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(base / "server.log").open("wb"),
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with socket.create_connection((address, port), timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.2)
        run(
            [FERRYMAN, "login", "--server", url, "--username", "bench", "--password", PASSWORD], env
        )

        def apply(name: str, on: list[FleetHost], **more: Any) -> None:
            config = {
                "project": name,
                "repo": f"ssh://root@{git_address}/srv/git/bench.git",
                "environments": {
                    ENV: {
                        "hosts": [h.address for h in on],
                        "user": "root",
                        "webroot": f"/srv/www/{name}",
                        "releases": f"/srv/releases/{name}",
                        "parallel": len(on),
                        **more,
                    }
                },
            }
            project_file = base / f"{name}.yaml"
            project_file.write_text(json.dumps(config))  # JSON is YAML
            run([FERRYMAN, "apply", "--file", str(project_file)], env)

        apply("bench", hosts)

        def timed(*cli: str) -> dict[str, Any]:
            before, hosts_before = process_cpu(server.pid), hosts_cpu(hosts)
            wall, cli_cpu, out = run([FERRYMAN, *cli, "--wait", "--json"], env)
            deploy = json.loads(out)
            if deploy["status"] != "success":
                raise RuntimeError(f"ferryman {' '.join(cli)}: {deploy['status']}: {deploy}")
            return {
                "wall": wall,
                "cpu": process_cpu(server.pid) - before + cli_cpu,
                "cli_cpu": cli_cpu,
                "hosts_cpu": hosts_cpu(hosts) - hosts_before,
                "pickup": _seconds(deploy, "created_at", "started_at"),
                "run": _seconds(deploy, "started_at", "finished_at"),
                "stages": _stages(deploy),
                "release": deploy.get("release"),
            }

        def rounds(project: str, prefix: str = "") -> dict[str, Any]:
            """A first deploy, then ``--rounds`` of one file changed, deployed, rolled back."""
            out = {prefix + "first": timed("deploy", project, "--env", ENV, "--ref", "master")}
            redeploys, rollbacks = [], []
            for _ in range(args.rounds):
                change_one_file(work, bare)
                redeploys.append(timed("deploy", project, "--env", ENV, "--ref", "master"))
                rollbacks.append(timed("rollback", project, "--env", ENV))
            out[prefix + "redeploy"] = median_of(redeploys)
            out[prefix + "rollback"] = median_of(rollbacks)
            return out

        figures = rounds("bench")
        change_one_file(work, bare)
        release = timed("deploy", "bench", "--env", ENV, "--ref", "master")["release"]
        figures["emergency"] = timed("rollback", "bench", "--env", ENV, "--emergency")
        # what a rollback's check of the target release costs the hosts: one host alone, then
        # every host at once on this machine's cores (on a real fleet, each on its own)
        figures["hash_one"] = measure(lambda: asyncio.run(_hash(fleet, hosts[:1], release)))
        figures["hash_all"] = measure(lambda: asyncio.run(_hash(fleet, hosts, release)))
        # the same deploys to one host: the deploy host's part with the host's work on a core
        # of its own, in the same run
        apply("solo", hosts[:1])
        figures.update(rounds("solo", "solo_"))
        # a first deploy to every host with tiered fan-out: the deploy host streams the package
        # to FANOUT hosts, which pass it on
        if len(hosts) > 2 * FANOUT:
            apply("relay", hosts, transfer={"fanout": FANOUT, "authorized_keys": HOST_KEYS})
            figures["relay_first"] = timed("deploy", "relay", "--env", ENV, "--ref", "master")
        return figures
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(30)
        remove(fleet, hosts, *(f"/srv/{d}/{p}" for d in ("www", "releases") for p in PROJECTS))
        if args.home_on_tmpfs:
            subprocess.run(["umount", str(home)], check=False, timeout=60)


async def _hash(fleet: Fleet, hosts: list[FleetHost], release: str) -> None:
    """The listing a rollback checks its target release with (every file hashed on the host)."""
    layout = Layout("/srv/www/bench", "/srv/releases/bench", "/srv/releases/shared")
    ex = Executor(client_key=fleet.client_key, known_hosts=fleet.known_hosts)

    async def one(target: Target) -> None:
        await ex.run(target, integrity.listing(layout, release), stage="hash", timeout=600)

    try:
        targets = [Target(h.address, h.address, 22, "root") for h in hosts]
        failures = await fan_out(targets, one, 50)
        assert not failures, failures
    finally:
        await ex.close()


def _seconds(deploy: dict[str, Any], start: str, end: str) -> float | None:
    if not deploy.get(start) or not deploy.get(end):
        return None
    return (
        datetime.fromisoformat(deploy[end]) - datetime.fromisoformat(deploy[start])
    ).total_seconds()


def _stages(deploy: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for stage in deploy.get("stages") or []:
        if stage.get("duration") is not None:
            out[stage["name"]] = float(stage["duration"])
    return out


# --- Capistrano ------------------------------------------------------------------------------

CAPFILE = """\
require "capistrano/setup"
require "capistrano/deploy"
require "capistrano/scm/git"
install_plugin Capistrano::SCM::Git
"""


def capistrano(
    args: argparse.Namespace,
    base: Path,
    fleet: Fleet,
    hosts: list[FleetHost],
    git_address: str,
    work: Path,
    bare: Path,
    agent_env: dict[str, str],
) -> dict[str, Any]:
    root = base / "cap"
    (root / "config" / "deploy").mkdir(parents=True)
    (root / "Capfile").write_text(CAPFILE)
    known = fleet.known_hosts
    (root / "config" / "deploy.rb").write_text(
        "\n".join(
            [
                'lock "3.17.2"',
                'set :application, "bench"',
                f'set :repo_url, "ssh://root@{git_address}/srv/git/bench.git"',
                'set :branch, "master"',
                'set :deploy_to, "/srv/cap/bench"',
                "set :keep_releases, 3",
                "set :log_level, :warn",
                # git on the hosts checks the git host's key against the fleet's known hosts
                # (never root's own ~/.ssh); GIT_SSH_COMMAND wins over Capistrano's GIT_SSH
                f'set :default_env, {{ "GIT_SSH_COMMAND" => "ssh -o UserKnownHostsFile={known} '
                '-o StrictHostKeyChecking=yes -o BatchMode=yes" }',
                "set :ssh_options, {",
                f'  keys: ["{fleet.client_key}"], keys_only: true,',
                f'  user_known_hosts_file: "{known}", verify_host_key: :always,',
                '  forward_agent: true, auth_methods: ["publickey"], user: "root"',
                "}",
                "",
            ]
        )
    )
    (root / "config" / "deploy" / "bench.rb").write_text(
        "".join(f'server "{h.address}", user: "root", roles: %w[app]\n' for h in hosts)
    )
    env = {**os.environ, **agent_env}
    cap = ["cap", "bench"]
    try:

        def timed(task: str) -> dict[str, Any]:
            wall, cpu, _ = run([*cap, task], env, cwd=root)
            return {"wall": wall, "cpu": cpu}

        figures: dict[str, Any] = {"first": timed("deploy")}
        redeploys, rollbacks = [], []
        for _ in range(args.rounds):
            change_one_file(work, bare)
            time.sleep(1)  # Capistrano names releases by the second
            redeploys.append(timed("deploy"))
            rollbacks.append(timed("deploy:rollback"))
            time.sleep(1)
        figures["redeploy"] = median_of(redeploys)
        figures["rollback"] = median_of(rollbacks)
        return figures
    finally:
        remove(fleet, hosts, "/srv/cap")


# --- Ansible ---------------------------------------------------------------------------------

DEPLOY_PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: a new release directory
      ansible.builtin.file:
        path: "{{ root }}/releases/{{ release }}"
        state: directory
    - name: the tree, built once on the deploy host, unpacked into it
      ansible.builtin.unarchive:
        src: "{{ package }}"
        dest: "{{ root }}/releases/{{ release }}"
    - name: current points at it
      ansible.builtin.file:
        src: "{{ root }}/releases/{{ release }}"
        dest: "{{ root }}/current"
        state: link
        force: true
"""

ROLLBACK_PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: what current points at
      ansible.builtin.stat:
        path: "{{ root }}/current"
      register: current
    - name: the releases
      ansible.builtin.find:
        paths: "{{ root }}/releases"
        file_type: directory
      register: found
    - name: current points at the release before
      vars:
        names: "{{ found.files | map(attribute='path') | sort | list }}"
      ansible.builtin.file:
        src: "{{ names[names.index(current.stat.lnk_source) - 1] }}"
        dest: "{{ root }}/current"
        state: link
        force: true
"""


def ansible(
    args: argparse.Namespace,
    base: Path,
    fleet: Fleet,
    hosts: list[FleetHost],
    work: Path,
    bare: Path,
) -> dict[str, Any]:
    root = base / "ansible"
    (root / "cp").mkdir(parents=True)
    (root / "hosts.ini").write_text("".join(f"{h.address}\n" for h in hosts))
    (root / "ansible.cfg").write_text(
        "\n".join(
            [
                "[defaults]",
                f"inventory = {root / 'hosts.ini'}",
                f"forks = {len(hosts)}",
                "remote_user = root",
                f"private_key_file = {fleet.client_key}",
                "interpreter_python = /usr/bin/python3",
                "host_key_checking = True",
                "retry_files_enabled = False",
                f"local_tmp = {root / 'tmp'}",
                "[ssh_connection]",
                f"ssh_args = -o UserKnownHostsFile={fleet.known_hosts} -o ControlMaster=auto "
                f"-o ControlPersist=30s -o IdentitiesOnly=yes",
                f"control_path_dir = {root / 'cp'}",
                "pipelining = True",
                "",
            ]
        )
    )
    (root / "deploy.yml").write_text(DEPLOY_PLAYBOOK)
    (root / "rollback.yml").write_text(ROLLBACK_PLAYBOOK)
    env = {**os.environ, "ANSIBLE_CONFIG": str(root / "ansible.cfg"), "HOME": str(root)}
    counter = iter(range(1, 1000))
    try:

        def deploy() -> dict[str, Any]:
            cpu0, t0 = children_cpu(), time.perf_counter()
            package = tree_package(bare, root / "package.tar.gz", "tar.gz")  # the build, once
            release = f"r{next(counter):03d}"
            extra = json.dumps(
                {"root": "/srv/ansible/bench", "release": release, "package": str(package)}
            )
            run(["ansible-playbook", "-e", extra, str(root / "deploy.yml")], env, cwd=root)
            return {"wall": time.perf_counter() - t0, "cpu": children_cpu() - cpu0}

        def rollback() -> dict[str, Any]:
            extra = json.dumps({"root": "/srv/ansible/bench"})
            wall, cpu, _ = run(
                ["ansible-playbook", "-e", extra, str(root / "rollback.yml")], env, cwd=root
            )
            return {"wall": wall, "cpu": cpu}

        figures: dict[str, Any] = {"first": deploy()}
        redeploys, rollbacks = [], []
        for _ in range(args.rounds):
            change_one_file(work, bare)
            redeploys.append(deploy())
            rollbacks.append(rollback())
        figures["redeploy"] = median_of(redeploys)
        figures["rollback"] = median_of(rollbacks)
        return figures
    finally:
        remove(fleet, hosts, "/srv/ansible")


# --- the run ---------------------------------------------------------------------------------


def measure(fn: Callable[[], Any]) -> dict[str, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = me.ru_utime + me.ru_stime + children_cpu()
    t0 = time.perf_counter()
    fn()
    me = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "wall": time.perf_counter() - t0,
        "cpu": me.ru_utime + me.ru_stime + children_cpu() - cpu0,
    }


def start_agent(base: Path, key: Path) -> tuple[int, dict[str, str]]:
    """An ssh-agent holding the fleet key, for Capistrano's forwarding; (pid, its env)."""
    sock = base / "agent.sock"
    out = subprocess.run(
        ["ssh-agent", "-s", "-a", str(sock)], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    pid = int(out.split("SSH_AGENT_PID=")[1].split(";")[0])
    env = {"SSH_AUTH_SOCK": str(sock)}
    subprocess.run(["ssh-add", "-q", str(key)], env={**os.environ, **env}, check=True, timeout=30)
    return pid, env


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--net", default=os.environ.get("FERRYMAN_BENCH_NET", "127.0.150"))
    parser.add_argument("--only", default=",".join(PEERS), help="which tools, comma-separated")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--home-on-tmpfs",
        action="store_true",
        help="FERRYMAN_HOME (the build's workspace) on a tmpfs instead of the disk",
    )
    args = parser.parse_args()
    if not args.net.startswith("127."):
        parser.error("--net must be a loopback /24 (127.x.y)")
    chosen = [p.strip() for p in args.only.split(",") if p.strip()]
    if unknown := set(chosen) - set(PEERS):
        parser.error(f"--only: unknown {sorted(unknown)}; choose from {', '.join(PEERS)}")

    base = Path(tempfile.mkdtemp(prefix="ferryman-peers-"))
    # every host's sshd also reads a keys file of its own, for the relay project's deploy keys
    fleet = start_relay_fleet(base / "fleet", args.hosts, args.net, 1, tmpfs=True)
    agent_pid: int | None = None
    figures: dict[str, Any] = {
        "hosts": args.hosts,
        "files": args.files,
        "mb": args.mb,
        "rounds": args.rounds,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, {platform.python_version()}",
        "load_before": os.getloadavg()[0],
        "home": "tmpfs" if args.home_on_tmpfs else "disk",
    }
    try:
        git_host = add_host(fleet, "git", f"{args.net}.250")
        hosts = [h for h in fleet.hosts if h.name != "git"]
        print(f"generating {args.files} files / {args.mb} MB …", file=sys.stderr)
        work, bare = base / "work", git_host.root / "git" / "bench.git"
        bare.parent.mkdir(parents=True)
        generate_repo(work, bare, args.files, args.mb, 10)
        targets = [Target(h.address, h.address, 22, "root") for h in hosts]
        key, known = fleet.client_key, fleet.known_hosts

        print("floors …", file=sys.stderr)
        trues = [
            measure(lambda: asyncio.run(floor_ssh_true(key, known, targets))) for _ in range(3)
        ]
        figures["floor_ssh_true"] = sorted(trues, key=lambda t: t["wall"])[1]
        package = tree_package(bare, base / "tree.tar.zst", "zst")
        figures["package_mb"] = package.stat().st_size / 1e6
        figures["floor_push_untar"] = measure(
            lambda: asyncio.run(floor_unpack(key, known, targets, package))
        )
        for peer in chosen:
            print(f"{peer} …", file=sys.stderr)
            load0 = os.getloadavg()[0]
            if peer == "ferryman":
                figures[peer] = ferryman(args, base, fleet, hosts, git_host.address, work, bare)
            elif peer == "capistrano":
                if agent_pid is None:
                    agent_pid, agent_env = start_agent(base, fleet.client_key)
                figures[peer] = capistrano(
                    args, base, fleet, hosts, git_host.address, work, bare, agent_env
                )
            else:
                figures[peer] = ansible(args, base, fleet, hosts, work, bare)
            figures[peer]["load"] = [load0, os.getloadavg()[0]]
        # the floor again at the end: the load moves while the tools run
        figures["floor_push_untar_after"] = measure(
            lambda: asyncio.run(floor_unpack(key, known, targets, package))
        )
        figures["load_after"] = os.getloadavg()[0]
    finally:
        if agent_pid is not None:
            try:
                os.kill(agent_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        fleet.stop()
        shutil.rmtree(base, ignore_errors=True)
    report(figures, chosen)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


def report(f: dict[str, Any], chosen: list[str]) -> None:
    true_s = f["floor_ssh_true"]["wall"]
    push_s = f["floor_push_untar"]["wall"]
    after = f["floor_push_untar_after"]
    print(f"\npush+untar floor: {push_s:.2f} s first, {after['wall']:.2f} s at the end")
    print(
        f"\n{f['hosts']} hosts (tmpfs /srv), {f['files']} files / {f['mb']} MB "
        f"(package {f['package_mb']:.1f} MB zstd), FERRYMAN_HOME on {f['home']}, "
        f"medians of {f['rounds']}, {f['date']}, "
        f"{f['machine']}, load {f['load_before']:.1f} → {f['load_after']:.1f}\n"
    )
    heads = ["case", "asyncssh `true` floor", "push+untar floor", *[p.capitalize() for p in chosen]]
    print("| " + " | ".join(heads) + " |")
    print("|" + "---|" * len(heads))

    def cell(peer: str, case: str, floor: float) -> str:
        wall = f[peer][case]["wall"]
        text = f"{wall:.1f} s" if wall >= 10 else f"{wall:.2f} s"
        return f"{text} ({wall / floor:.1f}× floor)" if peer == "ferryman" else text

    rows = [
        ("first deploy", "", f"{push_s:.1f} s", [cell(p, "first", push_s) for p in chosen]),
        (
            "redeploy, one file changed",
            f"{true_s:.2f} s",
            "",
            [cell(p, "redeploy", true_s) for p in chosen],
        ),
        ("rollback", f"{true_s:.2f} s", "", [cell(p, "rollback", true_s) for p in chosen]),
        (
            "deploy-host CPU, first deploy",
            f"{f['floor_ssh_true']['cpu']:.2f} s",
            f"{f['floor_push_untar']['cpu']:.1f} s",
            [f"{f[p]['first']['cpu']:.1f} s" for p in chosen],
        ),
    ]
    for name, floor_true, floor_push, cells in rows:
        print("| " + " | ".join([name, floor_true, floor_push, *cells]) + " |")
    for peer in chosen:
        for case in ("redeploy", "rollback"):
            rounds = ", ".join(f"{w:.2f}" for w in f[peer][case]["all"])
            print(f"\n{peer} {case}: every round {rounds} s; CPU {f[peer][case]['cpu']:.2f} s")
        load = f[peer]["load"]
        print(f"{peer}: load {load[0]:.1f} → {load[1]:.1f}")
    if "ferryman" in f:
        fm = f["ferryman"]
        print(
            f"\nferryman emergency rollback (no hashing, every host at once): "
            f"{fm['emergency']['wall']:.2f} s ({fm['emergency']['wall'] / true_s:.1f}× floor)"
            "\nthe target release hashed (a rollback's check): "
            f"one host {fm['hash_one']['wall']:.2f} s"
            f", all {f['hosts']} hosts at once {fm['hash_all']['wall']:.2f} s"
        )
        verified = fm["hash_all"]["wall"]
        print(
            f"a rollback against the floor of a verified one (connect and hash the target on "
            f"every host): {fm['rollback']['wall'] / verified:.2f}×"
            f"\nthe hosts' CPU (their sshd and sessions, on this machine's cores): "
            + ", ".join(
                f"{case} {fm[case]['hosts_cpu']:.2f} s"
                for case in ("first", "redeploy", "rollback", "emergency")
            )
        )
        if "solo_first" in fm:
            solo = ", ".join(
                f"{case} {fm['solo_' + case]['wall']:.2f} s (deploy-host CPU "
                f"{fm['solo_' + case]['cpu']:.2f} s)"
                for case in ("first", "redeploy", "rollback")
            )
            print(f"the same to one host: {solo}")
        if "relay_first" in fm:
            relay = fm["relay_first"]
            print(
                f"first deploy with transfer.fanout {FANOUT}: {relay['wall']:.2f} s, "
                f"deploy-host CPU {relay['cpu']:.2f} s (without: {fm['first']['cpu']:.2f} s)"
            )
        for case in ("first", "redeploy", "rollback", "emergency"):
            fig = f["ferryman"][case]
            stages = ", ".join(f"{k} {v:.2f}" for k, v in fig.get("stages", {}).items())
            print(
                f"\nferryman {case}: queue pick-up {fig.get('pickup')}, server run {fig.get('run')}"
                f", CLI CPU {fig['cli_cpu']:.2f} s; stages: {stages}"
            )


if __name__ == "__main__":
    main()
