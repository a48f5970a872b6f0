"""The container image, built by contrib/container/build from Debian packages (mmdebstrap)
and imported with podman — no registry: a server container and a worker container on one
PostgreSQL database deploy to the real fleet. The same image with systemd added boots a real
systemd that runs contrib/systemd/ferryman.service as shipped, hardening included, and a
deploy's build runs in the sandbox under it."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ferryman.secretbox import new_key
from ferryman.testing import databases
from tests.helpers import Repo, project_config, read_live, unique
from tests.ops.servers import cli, free_port
from tests.ops.test_first_run import fresh_home

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(2400)]  # the image takes minutes
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
UNIT_PORT = 18132  # this suite's own loopback port (the systemd container shares the network)
Podman = Callable[..., subprocess.CompletedProcess[str]]
IMAGES = "localhost/ferryman-test"


def _podman_env(where: Path) -> dict[str, str]:
    """podman as this machine can run it: runc (crun refuses its hybrid cgroups) and no
    default ulimits (they cannot be set here)."""
    conf = where / "containers.conf"
    conf.write_text("[containers]\ndefault_ulimits = []\n")
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def _podman(env: dict[str, str]) -> Podman:
    def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["podman", *args], env=env, capture_output=True, text=True, timeout=300
        )
        assert not check or done.returncode == 0, done.stderr
        return done

    return podman


EXTRA = "systemd,systemd-sysv,dbus"  # for the unit's test; harmless to the other


def _inputs_digest() -> str:
    """A digest of everything the image is built from: the package source, pyproject.toml and
    the build script (the files themselves, committed or not; no caches)."""
    digest = hashlib.sha256(EXTRA.encode())
    paths = [ROOT / "pyproject.toml", ROOT / "contrib" / "container" / "build"]
    paths += sorted(
        p for p in (ROOT / "src").rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )
    for path in paths:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Iterator[tuple[str, Podman]]:
    """The image, named by a digest of its inputs: built once, under a lock, by whichever test
    process needs it first, and kept for the next run while nothing it is made of changes (an
    older test image is removed when a new one is built)."""
    for tool in ("podman", "mmdebstrap", "runc"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            pytest.skip(f"{tool} is missing: run scripts/setup-system --test")
    env = _podman_env(tmp_path_factory.mktemp("podman"))
    podman = _podman(env)
    name = f"{IMAGES}:{_inputs_digest()}"
    with open(Path(tempfile.gettempdir()) / "ferryman-test-image.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if podman("image", "exists", name, check=False).returncode != 0:
            old = podman("images", "--format", "{{.Repository}}:{{.Tag}}", IMAGES, check=False)
            for stale in old.stdout.split():
                podman("rmi", "-f", stale, check=False)
            built = subprocess.run(
                [str(ROOT / "contrib" / "container" / "build"), "--image", name,
                 "--include", EXTRA],
                env=env, capture_output=True, text=True, timeout=1500,
            )  # fmt: skip
            assert built.returncode == 0, built.stderr[-3000:]
            assert built.stdout.strip().endswith(name)
    yield name, podman


def _wait_ready(url: str, why: Callable[[], str]) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, why()
        time.sleep(0.5)


def _deploy_through(url: str, git_host, targets, tmp_path: Path, build: str) -> Repo:
    """As a user of the server at ``url``: a project whose build is ``build``, deployed."""
    repo = Repo(git_host, tmp_path, unique("image"))
    repo.commit({"index.html": f"deployed through {url}\n"}, tag="v1")
    project = tmp_path / "project.yaml"
    config = project_config(repo.name, repo.url, targets, tasks={"post_deploy": build})
    project.write_text(yaml.safe_dump(config))
    user = tmp_path / "user"
    conf: dict[str, Any] = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    cli(user, "login", "--server", url, "--username", "alice", "--password", PASSWORD, **conf)
    cli(user, "env", "set", "production", "--no-approval", **conf)
    cli(user, "apply", "-f", str(project), **conf)
    done = cli(user, "deploy", repo.name, "--env", "production", "--ref", "v1", "--wait", **conf)
    assert "succeeded" in done.stdout
    assert {read_live(h, repo.name, "index.html") for h in targets} == {f"deployed through {url}\n"}
    return repo


def test_the_image_built_from_debian_packages_runs_a_server_and_a_worker_that_deploy(
    image, fleet, git_host, targets, tmp_path
):
    name, podman = image
    reason = databases.unavailable("postgresql")
    if reason:
        pytest.skip(reason)
    url = databases.create("postgresql", tmp_path)
    home = fresh_home(tmp_path, fleet)
    port = free_port()
    names = [f"ferryman-test-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    common = [
        "--runtime", "runc", "--network", "host",
        "-v", f"{home}:/var/lib/ferryman",
        "-e", f"FERRYMAN_DATABASE_URL={url}",
        "-e", f"FERRYMAN_SECRET_KEY={new_key().decode()}",
        "-e", f"FERRYMAN_SANDBOX_UID_BASE={os.environ.get('FERRYMAN_SANDBOX_UID_BASE', '')}",
        "-e", "FERRYMAN_WORKER_POLL=0.2",
    ]  # fmt: skip
    try:
        podman("run", "-d", "--name", names[0], *common, name,
               "serve", "--host", "127.0.0.1", "--port", str(port), "--no-worker")  # fmt: skip
        server = f"http://127.0.0.1:{port}"
        _wait_ready(server, lambda: podman("logs", names[0]).stderr)
        # the worker: privileged, so the build sandbox can make its namespaces inside
        podman("run", "-d", "--name", names[1], "--privileged", *common, name, "worker")
        podman("exec", names[0], "ferryman", "admin", "create-user", "alice",
               "--password", PASSWORD, "--superuser")  # fmt: skip
        repo = _deploy_through(server, git_host, targets, tmp_path, "echo built > built.txt\n")
        assert {read_live(h, repo.name, "built.txt") for h in targets} == {"built\n"}
        logs = podman("logs", names[1]).stderr + podman("logs", names[1]).stdout
        assert '"event": "claimed"' in logs and '"event": "finished"' in logs
    finally:
        for each in names:
            podman("stop", "-t", "30", each, check=False)
            podman("rm", "-f", each, check=False)
        databases.drop(url)


def test_systemd_runs_the_shipped_unit_hardened_and_the_build_sandbox_works_under_it(
    image, fleet, git_host, targets, tmp_path
):
    name, podman = image
    home = fresh_home(tmp_path, fleet)
    dropin = tmp_path / "ferryman.service.d"
    dropin.mkdir()
    # only the address changes; every hardening option is the shipped unit's
    uid_base = os.environ.get("FERRYMAN_SANDBOX_UID_BASE", "1900000000")
    (dropin / "test.conf").write_text(
        "[Service]\nExecStart=\nExecStart=/opt/ferryman/bin/ferryman serve --host 127.0.0.1 "
        f"--port {UNIT_PORT} --proxy-headers\nEnvironment=FERRYMAN_SANDBOX_UID_BASE={uid_base}\n"
    )
    etc = tmp_path / "etc"
    etc.mkdir()
    shutil.copy(ROOT / "contrib" / "systemd" / "ferryman.env", etc / "ferryman.env")
    unit = ROOT / "contrib" / "systemd" / "ferryman.service"
    box = f"ferryman-systemd-{uuid.uuid4().hex[:8]}"
    try:
        podman(
            "run", "-d", "--name", box, "--privileged", "--systemd=always",
            "--runtime", "runc", "--network", "host",
            "-v", f"{home}:/var/lib/ferryman",
            "-v", f"{unit}:/etc/systemd/system/ferryman.service:ro",
            "-v", f"{dropin}:/etc/systemd/system/ferryman.service.d:ro",
            "-v", f"{etc}:/etc/ferryman:ro",
            "--entrypoint", "/sbin/init", name,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            state = podman("exec", box, "systemctl", "is-system-running", check=False).stdout
            if state.strip() in ("running", "degraded"):
                break
            assert time.monotonic() < deadline, f"systemd did not boot: {state}"
            time.sleep(0.5)
        podman("exec", box, "systemctl", "start", "ferryman.service")
        url = f"http://127.0.0.1:{UNIT_PORT}"
        _wait_ready(
            url, lambda: podman("exec", box, "journalctl", "-u", "ferryman", "--no-pager").stdout
        )
        pid = podman("exec", box, "systemctl", "show", "-p", "MainPID", "--value", "ferryman")
        pid_text = pid.stdout.strip()
        assert "NoNewPrivs:\t1" in podman("exec", box, "cat", f"/proc/{pid_text}/status").stdout
        touched = podman(
            "exec", box, "nsenter", "-t", pid_text, "-m", "touch", "/usr/evil", check=False
        )
        assert touched.returncode != 0 and "Read-only file system" in touched.stderr

        podman("exec", box, "ferryman", "admin", "create-user", "alice",
               "--password", PASSWORD, "--superuser")  # fmt: skip
        build = "id -u > uid.txt\ntest -e /var/lib/ferryman/secret.key || echo hidden > home.txt\n"
        repo = _deploy_through(url, git_host, targets, tmp_path, build)
        # the build ran in the sandbox (uid 1000 inside it) and saw nothing of the server's home
        assert {read_live(h, repo.name, "uid.txt") for h in targets} == {"1000\n"}
        assert {read_live(h, repo.name, "home.txt") for h in targets} == {"hidden\n"}
        assert podman("exec", box, "systemctl", "stop", "ferryman.service").returncode == 0
    finally:
        podman("stop", "-t", "30", box, check=False)
        podman("rm", "-f", box, check=False)
