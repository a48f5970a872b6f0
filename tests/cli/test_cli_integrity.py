"""Issue 16, cause 6, from the CLI: ``releases --verify`` names the damaged releases per host
(live and kept) and exits 1; ``check`` fails a host whose live release lost or changed files.
A real ``ferryman serve``, the real fleet, damage made on the hosts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import Repo, live, project_config, release_dirs, running_server, unique

pytestmark = pytest.mark.fleet


@pytest.fixture
def cli(settings, tmp_path: Path):
    env = {**os.environ, "FERRYMAN_HOME": str(settings.home)}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env.pop("FERRYMAN_URL", None)
    env.pop("FERRYMAN_TOKEN", None)
    exe = shutil.which("ferryman", path=os.path.dirname(sys.executable)) or "ferryman"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=120)

    with running_server(settings.home, {"XDG_CONFIG_HOME": env["XDG_CONFIG_HOME"]}) as url:
        run("admin", "create-user", "alice", "--password", "correct horse battery", "--superuser")
        run("login", "--server", url, "--username", "alice", "--password", "correct horse battery")
        run("env", "set", "production", "--no-approval")
        yield run


def test_releases_verify_names_damaged_releases_per_host_and_check_fails_a_damaged_live_one(
    cli, git_host, targets, tmp_path
):
    hosts = targets[:3]
    repo = Repo(git_host, tmp_path, unique("clint"))
    repo.commit({"index.html": "v1\n", "lib/a.txt": "a\n", "lib/b.txt": "b\n"}, tag="v1")
    config = tmp_path / "project.yaml"
    config.write_text(yaml.safe_dump(project_config(repo.name, repo.url, hosts)))
    assert cli("apply", "-f", str(config)).returncode == 0
    for ref in ("v1", "v2"):
        if ref == "v2":
            repo.commit({"index.html": "v2\n"}, tag="v2")
        done = cli("deploy", repo.name, "--env", "production", "--ref", ref, "--wait")
        assert done.returncode == 0, done.stdout + done.stderr
    v2 = live(hosts[0], repo.name)
    v1 = next(n for n in release_dirs(hosts[0], repo.name) if n != v2)

    healthy = cli("releases", repo.name, "--env", "production", "--verify")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    checked = cli("check", repo.name, "--env", "production")
    assert checked.returncode == 0 and checked.stdout.count("live release matches") == 3

    releases = f"/srv/releases/{repo.name}"
    hosts[0].path(f"{releases}/{v2}/lib/a.txt").write_text("tampered\n")  # live, hard-linked
    shutil.rmtree(hosts[1].path(f"{releases}/{v1}/lib"))  # kept only
    hosts[2].path(f"{releases}/{v2}/extra.log").write_text("a hook's file\n")  # not damage

    verified = cli("releases", repo.name, "--env", "production", "--verify", "--json")
    assert verified.returncode == 1
    rows = {row["host"]: row for row in json.loads(verified.stdout)["hosts"]}
    changed = "1 changed: lib/a.txt (content)"
    assert rows[hosts[0].address]["damaged"] == {v1: changed, v2: changed}
    assert rows[hosts[1].address]["damaged"] == {v1: "3 missing: lib (+2 inside)"}
    assert rows[hosts[2].address]["damaged"] == {}
    assert rows[hosts[2].address]["notes"] == {v2: "1 extra: extra.log"}
    assert all(row["drift"] == "" for row in rows.values())

    table = cli("releases", repo.name, "--env", "production", "--verify")
    assert table.returncode == 1
    lines = table.stdout.splitlines()
    assert f"damaged: {hosts[0].address} {v2}: {changed}" in lines
    assert f"damaged: {hosts[1].address} {v1}: 3 missing: lib (+2 inside)" in lines
    assert f"note: {hosts[2].address} {v2}: 1 extra: extra.log" in lines

    checked = cli("check", repo.name, "--env", "production")
    assert checked.returncode == 1
    flat = " ".join(checked.stdout.split())  # the console wraps long lines
    assert flat.count("FAIL") == 1
    assert f"FAIL {hosts[0].address}: live release matches its manifest — {v2}: {changed}" in flat
    assert hosts[0].path(f"{releases}/{v2}/lib/a.txt").read_text() == "tampered\n"
