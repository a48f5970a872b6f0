"""The build sandbox, attacked from inside a hook and from repository content, on the real
fleet: what a hook can see, write, kill and reach, what stops a runaway build, and what is
refused. Every check asserts on the log, marker files and the hosts' state."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from ferryman.config.settings import Settings
from ferryman.services import deploy_views, secrets
from ferryman.services.audit import SYSTEM
from ferryman.testing.fleet import FleetHost
from tests.conftest import NET
from tests.helpers import Repo, apply, deploy, live, project_config, release_dirs, unique

pytestmark = pytest.mark.fleet
SERVER_MARKER = "server-only-8f3e1c"
SECRET = "s3cret-Value-9d41"


@pytest.fixture
def sandboxed(settings: Settings) -> Settings:
    """The sandbox on, with uids of this test run's own range (tests run concurrently)."""
    base = 1_950_000_000 + int(NET.rsplit(".", 1)[1]) * 10_000
    return dataclasses.replace(settings, sandbox="auto", sandbox_uid_base=base)


@pytest.fixture
def repo(git_host: FleetHost, tmp_path: Path) -> Repo:
    repo = Repo(git_host, tmp_path, unique("sbx"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    return repo


def _log(db, deploy_id: int) -> str:
    return "\n".join(x["text"] for x in deploy_views.logs_after(db, deploy_id, 0, 5000))


def _untouched(targets: list[FleetHost], project: str) -> None:
    for host in targets:
        assert live(host, project) is None
        assert release_dirs(host, project) == []


def test_a_hook_finds_nothing_of_the_server_and_changes_nothing_outside_its_workspace(
    db, sandboxed, repo, targets, tmp_path, monkeypatch
):
    home = sandboxed.home
    other_ws = sandboxed.workspaces / "2" / "deploy-999"  # another space's deploy
    other_ws.mkdir(parents=True)
    (other_ws / "theirs.txt").write_text("another deploy's file\n")
    other_mirror = sandboxed.repo_cache / "77" / "x.git"
    other_mirror.mkdir(parents=True)
    (other_mirror / "HEAD").write_text("ref: refs/heads/master\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    os.chmod(outside, 0o777)  # writable by anyone: only the sandbox's view may stop the hook
    victim = subprocess.Popen(["sleep", "120"])
    monkeypatch.setenv("FERRYMAN_TEST_SERVER_MARKER", SERVER_MARKER)
    hook = f"""
        try() {{ echo "TRY $1: $(bash -c "$2" 2>&1 | head -c 300 | tr '\\n' ' ')"; }}
        try root 'ls -a /'
        try home 'ls -a {home}'
        try workspaces 'ls -a {sandboxed.workspaces}'
        try db 'cat {home}/ferryman.db | head -c 20'
        try key 'cat {home}/secret.key'
        try sshkey 'cat {home}/ssh/id_ed25519'
        try workspace 'cat {other_ws}/theirs.txt'
        try mirror 'cat {other_mirror}/HEAD'
        try shadow 'cat /etc/shadow'
        try environ 'cat /proc/*/environ | tr "\\0" " "'
        try procs 'ls /proc | grep -c "^[0-9]"'
        try write 'echo pwned > {outside}/written && echo WROTE'
        try writehome 'echo pwned > {home}/pwned && echo WROTE'
        try writeusr 'touch /usr/pwned && echo WROTE'
        try kill 'kill -9 {victim.pid} && echo KILLED'
        try tmp 'echo private > /tmp/{SERVER_MARKER}-tmp && echo TMPOK'
        try id 'id -u'
        echo "ENV-BEGIN $(env | cut -d= -f1 | sort | tr '\\n' ' ') ENV-END"
        echo built > "$WORKSPACE/built.txt"
    """
    try:
        apply(db, project_config(repo.name, repo.url, targets[:2], tasks={"post_deploy": hook}))
        result = deploy(db, sandboxed, repo.name, "v1")
        assert result["status"] == "success", result["error"]
        assert victim.poll() is None  # still running: the hook could not even see it
    finally:
        victim.kill()
        victim.wait()
    log = _log(db, result["id"])
    tries = {
        line.split(":", 1)[0].removeprefix("TRY "): line.split(":", 1)[1]
        for line in log.splitlines()
        if line.startswith("TRY ")
    }
    assert "ferryman" not in tries["root"] and "root" not in tries["root"].split()
    # FERRYMAN_HOME is only the path down to its own workspace (empty dirs bwrap made)
    assert set(tries["home"].split()) == {".", "..", "workspaces"}
    assert set(tries["workspaces"].split()) == {".", "..", "1"}  # only its own space's dir
    for name in ("db", "key", "sshkey", "workspace", "mirror", "shadow"):
        assert "No such file" in tries[name], (name, tries[name])
    assert SERVER_MARKER not in log and "FERRYMAN_HOME" not in tries["environ"]
    assert int(tries["procs"].strip()) < 10  # its own processes only
    # (a write under FERRYMAN_HOME's path may land in the sandbox's own /tmp here, where the
    # test's home lies: what counts is that nothing appears on the host, asserted below)
    for name in ("writeusr", "kill"):
        assert "WROTE" not in tries[name] and "KILLED" not in tries[name], (name, tries[name])
    assert "TMPOK" in tries["tmp"] and tries["id"].strip() == "1000"
    names = set(log.split("ENV-BEGIN", 1)[1].split("ENV-END", 1)[0].split())
    assert names - {"PWD", "SHLVL", "_", "OLDPWD"} == {
        "PATH",
        "HOME",
        "LANG",
        "WEBROOT",
        "RELEASES",
        "RELEASE",
        "VERSION",
        "WORKSPACE",
        "PROJECT",
        "ENV",
        "BRANCH",
        "TAG",
        "COMMIT",
        "COMMIT_SHORT",
        "DEPLOY_ID",
        "DEPLOY_USER",
        "DEPLOY_TIME",
        # Walle 2.x's names for some of them (domain/variables.WALLE_ALIASES)
        "COMMIT_ID",
        "PROJECT_NAME",
        "TASK_ID",
        "CURRENT_RELEASE",
    }
    assert list(outside.iterdir()) == [] and not (home / "pwned").exists()
    assert not Path("/usr/pwned").exists() and not Path(f"/tmp/{SERVER_MARKER}-tmp").exists()
    assert (other_ws / "theirs.txt").read_text() == "another deploy's file\n"
    host = targets[0]
    built = host.path(f"/srv/releases/{repo.name}/{result['release']}/built.txt")
    assert built.read_text() == "built\n"


def test_no_secret_value_is_on_any_command_line_while_a_hook_runs(db, sandboxed, repo, targets):
    tasks = {"post_deploy": 'sleep 1.5\necho "have ${#API_TOKEN} chars"\n'}
    config = project_config(repo.name, repo.url, targets[:1], tasks=tasks, secrets=["API_TOKEN"])
    apply(db, config)
    secrets.set_secret(db, SYSTEM, repo.name, "production", "API_TOKEN", SECRET)
    seen: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.append(subprocess.run(["ps", "-eo", "args"], capture_output=True).stdout.decode())
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = deploy(db, sandboxed, repo.name, "v1")
    finally:
        done.set()
        watcher.join()
    assert result["status"] == "success", result["error"]
    assert f"have {len(SECRET)} chars" in _log(db, result["id"])
    assert any("bwrap" in snapshot for snapshot in seen)  # caught while the hook ran
    assert not any(SECRET in snapshot for snapshot in seen)


def test_a_hook_of_an_environment_without_network_cannot_reach_the_git_host(
    db, sandboxed, repo, targets, git_host
):
    probe = (
        f"if timeout 5 bash -c 'echo > /dev/tcp/{git_host.address}/22' 2>/dev/null; "
        "then echo NET-CONNECTED; else echo NET-REFUSED; fi\n"
    )
    config = project_config(repo.name, repo.url, targets[:1], tasks={"pre_deploy": probe})
    apply(db, config)
    online = deploy(db, sandboxed, repo.name, "v1")
    assert online["status"] == "success", online["error"]
    assert "NET-CONNECTED" in _log(db, online["id"])

    config["environments"]["production"]["sandbox"] = {"network": False}
    apply(db, config)
    offline = deploy(db, sandboxed, repo.name, "v1")
    assert offline["status"] == "success", offline["error"]
    assert "NET-REFUSED" in _log(db, offline["id"])


@pytest.mark.parametrize(
    "runaway",
    [
        "python3 -c 'import os\nwhile True: os.fork()'",
        "python3 -c 'b = bytearray(1 << 30); print(len(b))'",
    ],
    ids=["fork-bomb", "memory-hog"],
)
def test_a_runaway_build_is_stopped_by_the_limits_and_no_host_changes(
    db, sandboxed, repo, targets, runaway
):
    limited = dataclasses.replace(sandboxed, sandbox_processes=40, sandbox_memory=256 << 20)
    tasks = {"post_deploy": runaway + "\necho SURVIVED\n"}
    apply(db, project_config(repo.name, repo.url, targets[:2], tasks=tasks))
    started = time.monotonic()
    result = deploy(db, limited, repo.name, "v1")
    assert result["status"] == "failed"
    assert result["error"]["code"] == "task_failed"
    assert time.monotonic() - started < 30
    assert "SURVIVED" not in _log(db, result["id"])
    _untouched(targets[:2], repo.name)


def test_a_submodule_on_a_local_path_is_refused_and_nothing_ships(
    db, sandboxed, repo, targets, git_host, tmp_path
):
    stolen = Repo(git_host, tmp_path, unique("stolen"))
    stolen.commit({"secret.txt": "another space's code\n"})
    local = f"file://{stolen.bare}"
    subprocess.run(
        ["git", "-c", "protocol.file.allow=always", "submodule", "add", "-q", local, "vendor"],
        cwd=repo.work,
        check=True,
        capture_output=True,
    )
    repo.commit({"index.html": "v2\n"}, tag="v2")
    apply(db, project_config(repo.name, repo.url, targets[:2]))
    result = deploy(db, sandboxed, repo.name, "v2")
    assert result["status"] == "failed"
    assert result["error"]["code"] == "vcs_failed"
    assert "vendor" in result["error"]["message"] and local in result["error"]["message"]
    _untouched(targets[:2], repo.name)


def test_an_svn_external_on_a_local_path_is_refused_but_one_in_the_repository_ships(
    db, sandboxed, svn, targets, tmp_path
):
    root, base_url = svn
    name = unique("svnext")
    subprocess.run(["svnadmin", "create", str(root / name)], check=True)
    direct = f"file://{root / name}"

    def svn_(*args: str, cwd: Path | None = None) -> None:
        subprocess.run(["svn", *args, "--non-interactive", "-q"], cwd=cwd, check=True)

    svn_("mkdir", "--parents", "-m", "layout", f"{direct}/trunk", f"{direct}/lib")
    svn_("import", "-m", "lib", str(_file(tmp_path / "lib", "util.txt", "lib\n")), f"{direct}/lib")
    work = tmp_path / "wc"
    svn_("checkout", f"{direct}/trunk", str(work))
    (work / "index.html").write_text("r1\n")
    svn_("add", "index.html", cwd=work)
    svn_("propset", "svn:externals", "^/lib lib", ".", cwd=work)
    svn_("commit", "-m", "with an external in the repository", cwd=work)
    apply(db, project_config(name, f"{base_url}/{name}", targets[:2]))
    fine = deploy(db, sandboxed, name, "trunk")
    assert fine["status"] == "success", fine["error"]
    shipped = targets[0].path(f"/srv/releases/{name}/{fine['release']}/lib/util.txt")
    assert shipped.read_text() == "lib\n"

    svn_("propset", "svn:externals", f"{direct}/lib stolen", ".", cwd=work)
    svn_("commit", "-m", "an external on a local path", cwd=work)
    refused = deploy(db, sandboxed, name, "trunk")
    assert refused["status"] == "failed"
    assert "svn:externals" in refused["error"]["message"]
    assert direct in refused["error"]["message"]
    for host in targets[:2]:
        assert live(host, name) == fine["release"]
        assert release_dirs(host, name) == [fine["release"]]


def _file(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder


def test_without_bubblewrap_a_hook_is_refused_saying_how_to_fix_it(
    db, sandboxed, repo, targets, tmp_path
):
    broken = dataclasses.replace(sandboxed, bwrap="/nonexistent/bwrap")
    marker = tmp_path / "ran"
    apply(
        db,
        project_config(repo.name, repo.url, targets[:2], tasks={"pre_deploy": f"touch {marker}"}),
    )
    result = deploy(db, broken, repo.name, "v1")
    assert result["status"] == "failed"
    message = result["error"]["message"]
    assert "bubblewrap is not installed" in message and "FERRYMAN_SANDBOX=off" in message
    assert "user namespaces" in message
    assert not marker.exists()
    _untouched(targets[:2], repo.name)


def test_with_the_sandbox_off_a_hook_runs_unconfined_but_with_a_clean_environment(
    db, sandboxed, repo, targets, tmp_path, monkeypatch
):
    off = dataclasses.replace(sandboxed, sandbox="off", bwrap="/nonexistent/bwrap")
    monkeypatch.setenv("FERRYMAN_TEST_SERVER_MARKER", SERVER_MARKER)
    marker = tmp_path / "ran"
    hook = f'touch {marker}\necho "ENV $(env | cut -d= -f1 | tr "\\n" " ")"\n'
    apply(db, project_config(repo.name, repo.url, targets[:1], tasks={"pre_deploy": hook}))
    result = deploy(db, off, repo.name, "v1")
    assert result["status"] == "success", result["error"]
    assert marker.exists()
    log = _log(db, result["id"])
    assert "the build sandbox is off" in log
    assert "FERRYMAN_TEST_SERVER_MARKER" not in log and "FERRYMAN_HOME" not in log
