"""Stopping a deploy's commands on the real fleet from another connection: what a dead
worker left running is stopped by whoever takes its deploy over, and nothing else is."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ferryman.commands import remote as cmd
from ferryman.config.project import parse_project
from ferryman.pipeline.context import Context, new_context
from ferryman.pipeline.stopping import stop_deploy_commands
from ferryman.services.deploy_records import DatabaseWriter
from ferryman.services.deploy_store import database_store
from ferryman.testing.fleet import FleetHost
from tests.helpers import project_config, unique

pytestmark = pytest.mark.fleet
ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    """Running (the fleet's hosts share this machine's PIDs; a zombie runs nothing)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _context(db, settings, name: str, hosts: list[FleetHost], deploy_id: int) -> Context:
    config = parse_project(project_config(name, "ssh://git@127.0.0.1/none.git", hosts))
    return new_context(
        settings,
        config,
        "production",
        writer=DatabaseWriter(db),
        store_for=database_store(db),
        deploy_id=deploy_id,
    )


async def _stop_and_probe(ctx: Context) -> tuple[dict[str, str], list[str]]:
    try:
        problems = await stop_deploy_commands(ctx)
        probed = await ctx.remote(ctx.targets[0], cmd.probe(ctx.layout), stage="probe")
        return problems, [line for line in probed.stdout.splitlines() if line.startswith("rel")]
    finally:
        await ctx.executor.close()


def test_a_dead_worker_s_command_is_stopped_from_another_connection(
    db, settings, targets, tmp_path
):
    host, name = targets[0], unique("stop")
    pid_file = host.path(f"/srv/{name}.pid")
    script = f"echo $$ > /srv/{name}.pid; exec sleep 300"
    worker = subprocess.Popen(
        [
            sys.executable,
            *("-m", "tests.pipeline.tracked_command"),
            *(str(settings.ssh_key), str(settings.known_hosts), host.address),
            *(f"/srv/releases/{name}", "77", script),
        ],
        cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline and worker.poll() is None, "the command never ran"
        time.sleep(0.05)
    worker.kill()  # the worker dies; its command on the host does not
    worker.wait()
    pid = int(pid_file.read_text())
    assert _alive(pid)

    problems, releases = asyncio.run(_stop_and_probe(_context(db, settings, name, [host], 77)))

    assert problems == {}
    assert not _alive(pid)
    assert list(host.path(f"/srv/releases/{name}/.ferryman-run").iterdir()) == []
    assert releases == ["releases\tok"]  # the marker dir is not taken for a release


def test_a_stale_marker_naming_a_reused_pid_stops_nothing_on_the_host(db, settings, targets):
    host, name = targets[1], unique("stale")
    unrelated = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        run_dir = host.path(f"/srv/releases/{name}/.ferryman-run")
        run_dir.mkdir(parents=True)
        (run_dir / f"78.{unrelated.pid}").write_text("1\n")  # its pid, another start time

        problems, _ = asyncio.run(_stop_and_probe(_context(db, settings, name, [host], 78)))

        assert problems == {}
        assert _alive(unrelated.pid)
        assert list(run_dir.iterdir()) == []  # the stale marker is gone
    finally:
        unrelated.kill()
        unrelated.wait()
