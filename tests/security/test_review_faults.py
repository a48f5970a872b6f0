"""Review of issue 16's fencing and integrity work, from an attacker's side: someone who can
write into an environment's releases dir (a hook, a file left on a host) or who controls a
repository's file names. Where a hole was expected and the defence held, the test stays here
to keep it held: a forged ``.ferryman-run`` marker never makes a stop kill what it should
not, and the integrity check neither follows a link out of the releases dir nor hangs on a
special file."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from ferryman.commands import processes
from ferryman.commands import remote as cmd
from ferryman.pipeline import integrity
from ferryman.pipeline.context import new_context
from ferryman.remote.executor import Executor, Target
from ferryman.services import projects
from ferryman.services.deploy_records import DatabaseWriter
from ferryman.services.deploy_store import database_store
from ferryman.testing.fleet import Fleet, FleetHost
from tests.helpers import ADMIN, Repo, apply, deploy, project_config, unique

pytestmark = pytest.mark.fleet


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _started(pid: int) -> str:
    """Field 22 of /proc/PID/stat: what a marker records (the hosts share this PID space)."""
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[19]


def _layout(name: str) -> cmd.Layout:
    return cmd.Layout(
        webroot=f"/srv/www/{name}", releases=f"/srv/releases/{name}", shared_dir="/srv/shared"
    )


def _stop(fleet: Fleet, host: FleetHost, layout: cmd.Layout, deploy_id: int) -> tuple[int, str]:
    """``processes.stop`` for ``deploy_id`` run on ``host`` as recovery runs it."""

    async def go() -> tuple[int, str]:
        executor = Executor(client_key=fleet.client_key, known_hosts=fleet.known_hosts)
        target = Target(key=host.address, address=host.address, port=22, user="root")
        try:
            result = await executor.run(
                target,
                processes.stop(layout, deploy_id, grace=1),
                stage="t",
                timeout=30,
                check=False,
            )
        finally:
            await executor.close()
        return result.exit_status, result.stdout

    return asyncio.run(go())


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """A process the deploy user runs that no deploy started (a service), leading its own
    session: the session id a forged marker would name."""
    proc = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_forged_markers_never_make_a_stop_kill_a_process_no_deploy_started(
    fleet, targets, bystander
):
    host, name = targets[0], unique("forge")
    layout = _layout(name)
    run_dir = host.path(processes.run_dir(layout))
    run_dir.mkdir(parents=True)
    sid, start = bystander.pid, _started(bystander.pid)
    elsewhere = host.path(f"/srv/{name}-marker")
    elsewhere.write_text(start + "\n")
    forged = {
        f"7.{sid}": str(int(start) + 1),  # a pid reused since: another start time
        f"7.0{sid}": start,  # not a plain number
        f"7.{sid}x": start,
        f"7.{sid} ": start,
        "7.1": _started(1),  # session 1
        f"7.{'9' * 11}": start,  # longer than any pid
        f"17.{sid}": start,  # another deploy's, whose id starts with 1 or 7
        f"71.{sid}": start,
    }
    for marker, content in forged.items():
        (run_dir / marker).write_text(content + "\n")
    os.symlink(elsewhere, run_dir / f"8.{sid}")  # a marker that is a symlink

    for deploy_id in (1, 7, 8):
        assert _stop(fleet, host, layout, deploy_id) == (0, "")
        assert _alive(sid), f"deploy {deploy_id}'s stop killed a process it never started"
    # the malformed markers of the deploys stopped are gone; the other deploys' stay, and
    # so does the link (ignored, never followed: what it points to is untouched)
    left = sorted(p.name for p in run_dir.iterdir())
    assert left == sorted([f"17.{sid}", f"71.{sid}", f"8.{sid}"])
    assert elsewhere.read_text() == start + "\n"

    # the control: a marker that names the session exactly does stop it — the guards above
    # are what spared it, not a stop that kills nothing
    status, out = _stop(fleet, host, layout, 17)
    assert (status, out) == (0, f"stopped\t{sid}\n")
    bystander.wait(10)
    assert not _alive(sid)


def test_a_marker_dir_that_is_a_symlink_is_never_followed_by_a_stop_or_a_tracked_command(
    fleet, targets, bystander
):
    host, name = targets[1], unique("linkdir")
    layout, other = _layout(name), _layout(name + "-other")
    theirs = host.path(processes.run_dir(other))  # another environment's marker dir
    theirs.mkdir(parents=True)
    (theirs / f"5.{bystander.pid}").write_text(_started(bystander.pid) + "\n")
    ours = host.path(processes.run_dir(layout))
    ours.parent.mkdir(parents=True)
    os.symlink(theirs, ours)

    assert _stop(fleet, host, layout, 5) == (0, "")
    assert _alive(bystander.pid)
    assert (theirs / f"5.{bystander.pid}").exists()  # nothing removed through the link

    async def tracked() -> int:  # a command of deploy 6 runs, untracked, with its status
        executor = Executor(client_key=fleet.client_key, known_hosts=fleet.known_hosts)
        target = Target(key=host.address, address=host.address, port=22, user="root")
        try:
            result = await executor.run(
                target,
                ("bash", "-c", "exit 7"),
                stage="t",
                timeout=30,
                check=False,
                track=partial(processes.track, layout, 6),
            )
        finally:
            await executor.close()
        return result.exit_status

    assert asyncio.run(tracked()) == 7
    assert sorted(p.name for p in theirs.iterdir()) == [f"5.{bystander.pid}"]


def test_a_stop_ends_its_own_deploys_tracked_command_and_no_other_deploys(fleet, targets):
    host, name = targets[2], unique("twodeploys")
    layout = _layout(name)
    host.path(layout.releases).mkdir(parents=True)

    async def scenario() -> tuple[list[bool], list[bool]]:
        executor = Executor(client_key=fleet.client_key, known_hosts=fleet.known_hosts)
        target = Target(key=host.address, address=host.address, port=22, user="root")

        def run(deploy_id: int) -> asyncio.Task:
            script = f"echo $$ > /srv/{name}.{deploy_id}.pid; exec sleep 60"
            return asyncio.ensure_future(
                executor.run(
                    target,
                    ("bash", "-c", script),
                    stage="t",
                    timeout=90,
                    check=False,
                    track=partial(processes.track, layout, deploy_id),
                )
            )

        first, second = run(1), run(11)
        files = [host.path(f"/srv/{name}.{i}.pid") for i in (1, 11)]
        deadline = time.monotonic() + 30
        while not all(f.exists() and f.read_text().strip() for f in files):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        pids = [int(f.read_text()) for f in files]
        try:
            stop = await executor.run(
                target, processes.stop(layout, 1, grace=1), stage="t", timeout=30
            )
            assert processes.stopped(stop.stdout)[1] == []
            after_first = [_alive(p) for p in pids]
            await executor.run(target, processes.stop(layout, 11, grace=1), stage="t", timeout=30)
            await asyncio.wait({first, second}, timeout=15)
            return after_first, [_alive(p) for p in pids]
        finally:
            for task in (first, second):
                task.cancel()
            await executor.close()

    after_first, after_both = asyncio.run(scenario())
    assert after_first == [False, True]  # deploy 1's stop never touches deploy 11's
    assert after_both == [False, False]
    assert list(host.path(processes.run_dir(layout)).iterdir()) == []


def test_the_integrity_check_never_follows_a_release_link_nor_hangs_on_a_special_file(
    db, settings, git_host, targets, tmp_path
):
    host = targets[3]
    repo = Repo(git_host, tmp_path, unique("special"))
    repo.commit({"index.html": "v1\n", "lib/a.txt": "a\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, [host]))
    v1 = deploy(db, settings, repo.name, "v1")["release"]
    releases = host.path(f"/srv/releases/{repo.name}")
    # a release-named link to a complete release (here: one outside the releases dir)
    copied = host.path(f"/srv/{repo.name}-copy")
    subprocess.run(["cp", "-a", str(releases / v1), str(copied)], check=True)
    fake = "20300101-000000_v9_9999999"
    os.symlink(copied, releases / fake)
    # the manifest of another release linked in, and a FIFO where a file was
    kept = releases / "20300101-000001_v9_9999999"
    subprocess.run(["cp", "-a", str(releases / v1), str(kept)], check=True)
    (kept / ".ferryman-manifest").unlink()
    os.symlink(releases / v1 / ".ferryman-manifest", kept / ".ferryman-manifest")
    piped = releases / "20300101-000002_v9_9999999"
    subprocess.run(["cp", "-a", str(releases / v1), str(piped)], check=True)
    (piped / "lib/a.txt").unlink()
    os.mkfifo(piped / "lib/a.txt")

    _found, config = projects.project_config(db, ADMIN, repo.name, "project.read")
    ctx = new_context(
        settings, config, "production", writer=DatabaseWriter(db), store_for=database_store(db)
    )

    async def check() -> dict[str, list[integrity.Verdict]]:
        try:
            names = [v1, fake, kept.name, piped.name]
            return await integrity.inspect(ctx, {host.address: names}, "verify")
        finally:
            await ctx.executor.close()

    started = time.monotonic()
    verdicts = {v.release: v.reason for v in asyncio.run(check())[host.address]}
    assert time.monotonic() - started < 20
    assert verdicts == {
        v1: "",
        fake: f"release {fake} is missing",
        kept.name: "its manifest is missing",
        piped.name: "1 changed: lib/a.txt (file is now a special file)",
    }
    assert Path(copied / "index.html").read_text() == "v1\n"
