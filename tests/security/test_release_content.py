"""Issue 15: a repository's content and a project's secrets on the real fleet. A committed
``.ferryman-config``, a committed symlink under config files or shared paths never make a
deploy write or delete outside its release; secret values are never on a host's command
lines; a failing hook's stderr is stored masked. Marker files and host state are asserted."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest
from sqlalchemy import update

from ferryman.commands import remote as cmd
from ferryman.db.models import DeployHost
from ferryman.remote.executor import Executor, Target
from ferryman.services import config_files, deploy_views, secrets
from ferryman.services.audit import SYSTEM
from ferryman.testing.fleet import Fleet, FleetHost
from tests.helpers import ADMIN, Repo, apply, deploy, live, project_config, unique

pytestmark = pytest.mark.fleet
VALUE = "Zq-9fK2_never-on-argv!"


def _outside(host: FleetHost, name: str) -> Path:
    """A directory on ``host`` outside every release, with files that must survive."""
    outside = host.path(f"/srv/outside/{name}")
    (outside / "uploads").mkdir(parents=True, exist_ok=True)
    (outside / "keep").write_text("precious\n")
    (outside / "uploads" / "photo").write_text("photo\n")
    return outside


def _intact(outside: Path) -> None:
    assert (outside / "keep").read_text() == "precious\n"
    assert (outside / "uploads").is_dir() and not (outside / "uploads").is_symlink()
    assert (outside / "uploads" / "photo").read_text() == "photo\n"
    assert sorted(p.name for p in outside.iterdir()) == ["keep", "uploads"]


def _symlink(repo: Repo, rel: str, target: str) -> None:
    path = repo.work / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)


def _release(host: FleetHost, project: str, name: str | None = None) -> Path:
    return host.path(f"/srv/releases/{project}/{name or live(host, project)}")


def test_a_committed_ferryman_config_never_makes_a_deploy_delete_outside_the_release(
    db, settings, git_host, targets, tmp_path
):
    host = targets[0]
    repo = Repo(git_host, tmp_path, unique("fmcfg"))
    outside = _outside(host, repo.name)
    hostile = (
        f"/srv/outside/{repo.name}/keep\0"
        f"../../../outside/{repo.name}/keep\0"
        f"../../../outside/{repo.name}/uploads\0"
    )
    repo.commit({"index.html": "v1\n", ".ferryman-config": hostile}, tag="v1")
    apply(db, project_config(repo.name, repo.url, [host]))
    first = deploy(db, settings, repo.name, "v1")
    assert first["status"] == "success", first["error"]
    assert not (_release(host, repo.name) / ".ferryman-config").exists()  # never shipped
    repo.commit({"index.html": "v2\n"}, tag="v2")
    second = deploy(db, settings, repo.name, "v2")
    assert second["status"] == "success", second["error"]
    _intact(outside)

    # A release shipped by an older Ferryman may hold such a list already (and a committed
    # symlink to walk through): the next deploy removes only paths inside its own release.
    _symlink(repo, "data", f"/srv/outside/{repo.name}")
    repo.commit({"index.html": "v3\n"}, tag="v3")
    assert deploy(db, settings, repo.name, "v3")["status"] == "success"
    (_release(host, repo.name) / ".ferryman-config").write_bytes(
        (hostile + "data/keep\0data/uploads\0index.html\0").encode()
    )
    repo.commit({"index.html": "v4\n"}, tag="v4")
    fourth = deploy(db, settings, repo.name, "v4")
    assert fourth["status"] == "success", fourth["error"]
    _intact(outside)
    assert (_release(host, repo.name) / "index.html").read_text() == "v4\n"
    assert os.readlink(_release(host, repo.name) / "data") == f"/srv/outside/{repo.name}"


def test_a_committed_symlink_never_takes_rendered_config_files_outside_the_release(
    db, settings, git_host, targets, tmp_path
):
    host = targets[1]
    repo = Repo(git_host, tmp_path, unique("cfglink"))
    outside = _outside(host, repo.name)
    repo.commit({"index.html": "v1\n"}, tag="v1")
    config = project_config(
        repo.name, repo.url, [host], secrets=["API_KEY"], config_files=["conf/app.env"]
    )
    apply(db, config)
    secrets.set_secret(db, SYSTEM, repo.name, "production", "API_KEY", VALUE)
    config_files.set_file(db, ADMIN, repo.name, "production", "conf/app.env", "KEY=${API_KEY}\n")
    first = deploy(db, settings, repo.name, "v1")
    assert first["status"] == "success", first["error"]
    assert (_release(host, repo.name) / "conf" / "app.env").read_text() == f"KEY={VALUE}\n"

    (repo.work / "index.html").write_text("v2\n")
    _symlink(repo, "conf", f"/srv/outside/{repo.name}")
    repo.commit({}, tag="v2")
    failed = deploy(db, settings, repo.name, "v2")
    assert failed["status"] == "failed"
    assert "conf/app.env" in failed["error"]["message"]
    assert "symlink" in failed["error"]["message"]
    assert not (outside / "app.env").exists()
    _intact(outside)
    assert live(host, repo.name) == first["release"]  # still on its old release
    assert (_release(host, repo.name) / "index.html").read_text() == "v1\n"


def test_a_committed_symlink_under_a_shared_path_changes_nothing_outside_the_release(
    db, settings, git_host, targets, tmp_path
):
    host = targets[2]
    repo = Repo(git_host, tmp_path, unique("shlink"))
    outside = _outside(host, repo.name)
    repo.commit({"index.html": "v1\n", "data/uploads/.keep": ""}, tag="v1")
    shared_dir = f"/srv/shared/{repo.name}"
    apply(
        db,
        project_config(repo.name, repo.url, [host], shared=["data/uploads"], shared_dir=shared_dir),
    )
    first = deploy(db, settings, repo.name, "v1")
    assert first["status"] == "success", first["error"]
    (host.path(shared_dir) / "data" / "uploads" / "user.jpg").write_text("upload\n")

    (repo.work / "data" / "uploads" / ".keep").unlink()
    (repo.work / "data" / "uploads").rmdir()
    (repo.work / "data").rmdir()
    _symlink(repo, "data", f"/srv/outside/{repo.name}")
    repo.commit({"index.html": "v2\n"}, tag="v2")
    failed = deploy(db, settings, repo.name, "v2")
    assert failed["status"] == "failed"
    assert "data/uploads" in failed["error"]["message"]
    _intact(outside)
    assert live(host, repo.name) == first["release"]
    assert (host.path(shared_dir) / "data" / "uploads" / "user.jpg").read_text() == "upload\n"


def _run(fleet: Fleet, host: FleetHost, command: cmd.Command, stdin: bytes = b"") -> int:
    """Run a built command on a fleet host as a deploy would; its exit status."""

    async def go() -> int:
        executor = Executor(client_key=fleet.client_key, known_hosts=fleet.known_hosts)
        target = Target(key=host.address, address=host.address, port=22, user="root")
        try:
            result = await executor.run(
                target, command, stage="test", timeout=30, stdin=stdin, check=False
            )
        finally:
            await executor.close()
        return result.exit_status

    return asyncio.run(go())


def test_each_host_refuses_config_and_shared_paths_under_a_symlink_itself(fleet, targets):
    """The hosts' own checks, behind the deploy host's: a release dir already holding a
    symlink (from an earlier release, copied by hard links) is never written through."""
    import io
    import tarfile

    host = targets[3]
    name = unique("hostside")
    outside = _outside(host, name)
    layout = cmd.Layout(
        webroot=f"/srv/www/{name}",
        releases=f"/srv/releases/{name}",
        shared_dir=f"/srv/shared/{name}",
    )
    release = host.path(layout.release("r1"))
    release.mkdir(parents=True)
    os.symlink(f"/srv/outside/{name}", release / "conf")
    os.symlink(f"/srv/outside/{name}", release / "data")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("conf/app.env")
        info.size = len(VALUE)
        tar.addfile(info, io.BytesIO(VALUE.encode()))
    status = _run(fleet, host, cmd.write_config(layout, "r1", ["conf/app.env"]), out.getvalue())
    assert status == cmd.EXIT_UNSAFE_PATH
    shared = cmd.link_shared(layout, "r1", ["data/uploads"])
    assert shared is not None
    assert _run(fleet, host, shared) == cmd.EXIT_UNSAFE_PATH
    _intact(outside)
    assert not host.path(f"/srv/shared/{name}/data").exists()


class _CommandLines:
    """Reads every process's command line (the fleet's hosts share this PID namespace)
    until stopped: what ``ps -eo args`` on a host would show."""

    def __init__(self, needle: bytes) -> None:
        self.needle = needle
        self.leaks: list[bytes] = []
        self.seen_hook = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._scan, daemon=True)

    def _scan(self) -> None:
        while not self._stop.is_set():
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                        line = fh.read()
                except OSError:
                    continue
                if self.needle in line:
                    self.leaks.append(line)
                if line == b"sleep\x002.5\x00":
                    self.seen_hook = True

    def __enter__(self) -> _CommandLines:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_secret_values_are_never_on_a_hosts_command_lines(
    db, settings, git_host, targets, tmp_path
):
    hosts = targets[:2]
    repo = Repo(git_host, tmp_path, unique("argv"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    tasks = {"pre_release": 'sleep 2.5\nprintf %s "$API_KEY" > .got\n'}
    checks = [{"command": 'sleep 1; test "$(cat "$WEBROOT/.got")" = "$API_KEY"', "retries": 1}]
    apply(
        db,
        project_config(
            repo.name, repo.url, hosts, tasks=tasks, secrets=["API_KEY"], health_check=checks
        ),
    )
    secrets.set_secret(db, SYSTEM, repo.name, "production", "API_KEY", VALUE)
    with _CommandLines(VALUE.encode()) as lines:
        result = deploy(db, settings, repo.name, "v1")
    assert result["status"] == "success", result["error"]
    assert lines.seen_hook  # the scan ran while the hook did
    assert lines.leaks == []
    for host in hosts:
        assert (_release(host, repo.name) / ".got").read_text() == VALUE
    leftovers = [
        p for p in Path("/tmp").glob(".ferryman-task.*") if VALUE.encode() in p.read_bytes()
    ]
    assert leftovers == []


def test_a_failing_hooks_stderr_is_stored_masked_per_host(
    db, settings, git_host, targets, tmp_path
):
    host = targets[4]
    repo = Repo(git_host, tmp_path, unique("mask"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    tasks = {"pre_release": 'echo "login with $API_KEY refused" >&2\nexit 3\n'}
    apply(db, project_config(repo.name, repo.url, [host], tasks=tasks, secrets=["API_KEY"]))
    secrets.set_secret(db, SYSTEM, repo.name, "production", "API_KEY", VALUE)
    failed = deploy(db, settings, repo.name, "v1")
    assert failed["status"] == "failed"
    (row,) = failed["hosts"]
    assert "login with *** refused" in row["error"] and VALUE not in row["error"]
    with db.read() as s:
        stored = [h.error for h in s.query(DeployHost).filter_by(deploy_id=failed["id"])]
    assert stored and all(VALUE not in e for e in stored) and "***" in stored[0]
    assert live(host, repo.name) is None  # nothing switched

    # rows an older worker stored unmasked are masked when read
    with db.transaction() as s:
        s.execute(
            update(DeployHost)
            .where(DeployHost.deploy_id == failed["id"])
            .values(error=f"old worker: login with {VALUE} refused")
        )
    shown = deploy_views.get(db, failed["id"])["hosts"][0]["error"]
    assert shown == "old worker: login with *** refused"


def test_the_agent_install_form_refuses_a_user_that_breaks_out_of_the_script(tmp_path):
    import re

    from ferryman.db.models import AgentToken
    from tests.api.world import SPACE, build_world
    from tests.web.test_pages import browser, csrf_of

    world = build_world(tmp_path / "web")
    master = browser(world, "master")
    token = csrf_of(master)
    master.post(
        f"/s/{SPACE}/servers", data={"csrf": token, "name": "puller", "address": "10.9.9.8"}
    )
    listed = master.get(f"/s/{SPACE}/servers").text
    found = re.search(r"puller.*?/servers/(\d+)/agent", listed, re.S)
    assert found
    user = "root\nUNIT\n[Service]\nExecStartPre=/bin/touch /tmp/pwned\ncat <<'UNIT'"
    refused = master.post(
        f"/s/{SPACE}/servers/{found.group(1)}/agent", data={"csrf": token, "user": user}
    )
    assert refused.status_code == 422, refused.text
    assert "invalid user name" in refused.text and "base64 -d | sudo bash" not in refused.text
    with world.db.read() as s:  # no token was made for it
        assert s.query(AgentToken).filter(AgentToken.host.contains("10.9.9.8")).count() == 0
