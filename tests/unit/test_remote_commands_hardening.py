"""Hardened builders, attacked by running what they build with bash against a temp dir: a
release's content never makes them write or delete outside it, values are expanded once
(never re-parsed as shell), and the install script takes only plain user names."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from ferryman.commands import agent_script
from ferryman.commands import remote as cmd
from ferryman.config.project import HealthCheck
from ferryman.errors import ValidationError


def _bash(script: str, cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["bash", "-c", script], cwd=cwd, input=stdin, capture_output=True, timeout=30
    )


def _layout(tmp_path: Path) -> cmd.Layout:
    return cmd.Layout(
        webroot=str(tmp_path / "www"),
        releases=str(tmp_path / "releases"),
        shared_dir=str(tmp_path / "shared"),
    )


def _outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    (outside / "uploads").mkdir(parents=True)
    (outside / "keep").write_text("precious\n")
    (outside / "uploads" / "photo").write_text("photo\n")
    return outside


def test_the_delete_filter_passes_only_plain_paths_under_real_directories(tmp_path):
    release = tmp_path / "r"
    (release / "dir").mkdir(parents=True)
    (release / "dir" / "a").write_text("a")
    (release / "file").write_text("f")
    os.symlink(str(_outside(tmp_path)), release / "link")
    paths = [
        "dir/a",
        "file",
        "link",  # the link itself may go
        "link/keep",
        "/etc/passwd",
        "../outside/keep",
        "dir/../../outside/keep",
        "file/x",
        "./file",
        "dir//a",
        "",
        "a\nb",
    ]
    out = _bash(cmd.SAFE_PATHS + "fm_inside", release, b"\0".join(p.encode() for p in paths))
    assert out.returncode == 0, out.stderr
    # the last path has no NUL after it (lists sent on stdin end without one): still read
    assert out.stdout.split(b"\0")[:-1] == [b"dir/a", b"file", b"link", b"a\nb"]
    assert out.stderr.count(b"not removing") == len(paths) - 4


def test_a_hostile_config_list_in_the_base_release_deletes_nothing_outside(tmp_path):
    layout = _layout(tmp_path)
    outside = _outside(tmp_path)
    base = Path(layout.release("r1"))
    base.mkdir(parents=True)
    (base / "index.html").write_text("v1")
    (base / "app.env").write_text("old config")
    os.symlink(str(outside), base / "data")
    (base / ".ferryman-config").write_bytes(
        f"{outside}/keep\0../../outside/keep\0data/uploads\0data/keep\0app.env\0".encode()
    )
    script = cmd.receive_release(
        layout, "r2", "none", base="r1", delete=["data/uploads/photo", "../outside/keep"]
    )[2]
    out = _bash(script, tmp_path, stdin=_empty_tar(tmp_path))
    assert out.returncode == 0, out.stderr
    assert (outside / "keep").read_text() == "precious\n"
    assert (outside / "uploads" / "photo").exists()
    new = Path(layout.release("r2"))
    assert not (new / "app.env").exists() and not (new / ".ferryman-config").exists()
    assert (base / "app.env").exists()  # the older release is never touched
    # the same through the two-step path (long delete lists on stdin)
    start = cmd.start_release(layout, "r3", "r1")[2]
    out = _bash(start, tmp_path, stdin=b"data/uploads/photo\0/tmp\0../outside/keep\0")
    assert out.returncode == 0, out.stderr
    assert (outside / "keep").exists() and (outside / "uploads" / "photo").exists()


def _empty_tar(tmp_path: Path) -> bytes:
    (tmp_path / "empty").mkdir(exist_ok=True)
    return subprocess.run(
        ["tar", "-cf", "-", "-C", str(tmp_path / "empty"), "."], capture_output=True, check=True
    ).stdout


def test_config_files_are_never_written_through_a_symlinked_parent(tmp_path):
    layout = _layout(tmp_path)
    outside = _outside(tmp_path)
    release = Path(layout.release("r1"))
    release.mkdir(parents=True)
    os.symlink(str(outside), release / "conf")
    tar = _tar_of(tmp_path, {"conf/app.env": "SECRET=1\n"})
    out = _bash(cmd.write_config(layout, "r1", ["conf/app.env"])[2], tmp_path, tar)
    assert out.returncode == cmd.EXIT_UNSAFE_PATH
    assert b"conf/app.env" in out.stderr and b"symlink" in out.stderr
    assert not (outside / "app.env").exists()
    # a plain directory is fine, and a symlink at the file itself is replaced, not followed
    os.unlink(release / "conf")
    (release / "conf").mkdir()
    os.symlink(str(outside / "keep"), release / "conf" / "app.env")
    out = _bash(cmd.write_config(layout, "r1", ["conf/app.env"])[2], tmp_path, tar)
    assert out.returncode == 0, out.stderr
    assert (release / "conf" / "app.env").read_text() == "SECRET=1\n"
    assert (outside / "keep").read_text() == "precious\n"


def _tar_of(tmp_path: Path, files: dict[str, str]) -> bytes:
    src = tmp_path / "tarsrc"
    for rel, text in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    return subprocess.run(
        ["tar", "-cf", "-", "-C", str(src), *files], capture_output=True, check=True
    ).stdout


def test_shared_paths_under_a_symlinked_parent_are_refused_in_push_mode(tmp_path):
    layout = _layout(tmp_path)
    outside = _outside(tmp_path)
    release = Path(layout.release("r1"))
    release.mkdir(parents=True)
    os.symlink(str(outside), release / "data")
    command = cmd.link_shared(layout, "r1", ["data/uploads"])
    assert command is not None
    out = _bash(command[2], tmp_path)
    assert out.returncode == cmd.EXIT_UNSAFE_PATH
    assert b"data/uploads" in out.stderr
    assert (outside / "uploads").is_dir() and not (outside / "uploads").is_symlink()
    assert (outside / "uploads" / "photo").exists()
    assert not (tmp_path / "shared" / "data").exists()  # nothing copied out of it


def test_shared_paths_under_a_symlinked_parent_are_refused_in_the_pull_script(tmp_path):
    outside = _outside(tmp_path)
    plan = agent_script.ScriptPlan(
        server="http://127.0.0.1:1",
        host="127.0.0.1",
        task_id=1,
        action="deploy",
        release="r1",
        webroot=str(tmp_path / "www"),
        releases=str(tmp_path / "releases"),
        shared_dir=str(tmp_path / "shared"),
        shared=["data/uploads"],
    )
    script = agent_script.deploy_script(plan)
    start = script.index('  rm -rf -- "$FM_NEW"\n')
    end = script.index('  mv -T -- "$FM_NEW.ferryman-partial" "$FM_NEW"')
    partial = tmp_path / "releases" / "r1.ferryman-partial"
    partial.mkdir(parents=True)
    os.symlink(str(outside), partial / "data")
    block = (
        f"{cmd.SAFE_PATHS}FM_NEW={tmp_path}/releases/r1\n"
        f"( set -e\n{script[start:end]}) ; echo rc=$?"
    )
    out = _bash(block, tmp_path)
    assert f"rc={cmd.EXIT_UNSAFE_PATH}".encode() in out.stdout, out
    assert (outside / "uploads").is_dir() and not (outside / "uploads").is_symlink()
    assert (outside / "uploads" / "photo").exists()
    assert not (tmp_path / "shared" / "data").exists()


def test_a_pull_tcp_check_target_is_never_run_as_shell(tmp_path):
    marker = tmp_path / "pwned"
    checks = [
        HealthCheck(tcp=f"{{HOST}}$(touch {marker}):1", retries=1, interval=0.1, timeout=1),
        HealthCheck(tcp=f"{{HOST}}:1`touch {marker}`", retries=1, interval=0.1, timeout=1),
        HealthCheck(tcp=f'{{HOST}}";touch {marker};":1', retries=1, interval=0.1, timeout=1),
    ]
    plan = agent_script.ScriptPlan(
        server="http://127.0.0.1:1",
        host="127.0.0.1",
        task_id=1,
        action="deploy",
        release="r1",
        webroot="/nonexistent",
        releases="/nonexistent",
        shared_dir="/nonexistent",
        checks=checks,
    )
    functions = agent_script._checks(plan)
    log = tmp_path / "log"
    out = _bash(
        f"FM_LOG={log}\nFM_AGENT_HOST_ADDRESS=127.0.0.1\n{functions}checks; echo rc=$?", tmp_path
    )
    assert b"rc=1" in out.stdout
    assert not marker.exists()


def test_a_pull_tcp_check_still_connects_to_the_host(tmp_path):
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        plan = agent_script.ScriptPlan(
            server="http://127.0.0.1:1",
            host="127.0.0.1",
            task_id=1,
            action="deploy",
            release="r1",
            webroot="/x",
            releases="/x",
            shared_dir="/x",
            checks=[HealthCheck(tcp=f"{{HOST}}:{port}", retries=1, timeout=2)],
        )
        script = (
            f"FM_LOG={tmp_path / 'log'}\nFM_AGENT_HOST_ADDRESS=127.0.0.1\n"
            f"{agent_script._checks(plan)}checks; echo rc=$?"
        )
        assert b"rc=0" in _bash(script, tmp_path).stdout


def test_the_switch_script_never_expands_the_webroot_in_its_messages(tmp_path):
    marker = tmp_path / "pwned"  # the script runs in tmp_path: ``touch pwned`` lands there
    webroot = tmp_path / 'w"$(touch pwned)"`touch pwned`'
    webroot.mkdir()  # a real directory: the switch refuses and says so
    layout = cmd.Layout(
        webroot=str(webroot), releases=str(tmp_path / "rel"), shared_dir=str(tmp_path / "s")
    )
    out = _bash(cmd.switch(layout, layout.release("r1"), 1)[2], tmp_path)
    assert out.returncode == cmd.EXIT_WEBROOT_IS_DIR
    assert str(webroot).encode() in out.stderr
    assert not marker.exists()
    webroot.rmdir()
    out = _bash(cmd.switch(layout, f"{tmp_path}/rel/$(touch pwned)", 1)[2], tmp_path)
    assert out.returncode == cmd.EXIT_RELEASE_MISSING and not marker.exists()


@pytest.mark.parametrize(
    "user",
    [
        "root\nPOLLER\ntouch /tmp/x\ncat <<'POLLER'",
        "root\nUNIT\n[Service]\nExecStartPre=/bin/sh -c id",
        "root; touch /tmp/x",
        "$(id)",
        "-oops",
        "",
    ],
)
def test_the_install_script_refuses_a_user_that_is_not_a_plain_name(user):
    with pytest.raises(ValidationError, match="user"):
        agent_script.install_script("http://127.0.0.1:1", "h1", "fma_t", user=user)


def test_the_install_script_keeps_a_plain_user_inside_its_here_documents():
    script = agent_script.install_script("http://127.0.0.1:1", "h1", "fma_t", user="deploy")
    assert "User=deploy\n" in script
    cron = agent_script.install_script("http://x", "h1", "t", user="www-data", cron=True)
    assert "www-data /usr/local/bin/ferryman-agent" in cron


def test_the_agent_install_cli_refuses_a_bad_user_before_asking_for_a_token(monkeypatch):
    from typer.testing import CliRunner

    from ferryman.cli import agent

    asked: list[str] = []

    class Client:
        url = "http://127.0.0.1:1"

        def post(self, path: str, body: object) -> dict[str, str]:
            asked.append(path)
            return {"host": "h1", "token": "fma_t"}

    monkeypatch.setattr(agent, "Client", Client)
    result = CliRunner().invoke(
        agent.agent_app, ["install-script", "--host", "h1", "--user", "root\nUNIT\nx"]
    )
    assert result.exit_code != 0 and isinstance(result.exception, ValidationError)
    assert asked == []
    result = CliRunner().invoke(agent.agent_app, ["install-script", "--host", "h1", "--plain"])
    assert result.exit_code == 0 and asked == ["/spaces/default/agents"]


def test_hooks_reach_the_host_on_stdin_and_never_on_the_command_line(tmp_path):
    secret = "s3cr3t-Value_on-stdin"
    script = f'set -euo pipefail\nexport API_KEY={secret}\nprintf %s "$API_KEY" > got\n'
    argv = cmd.run_task()
    assert secret not in " ".join(argv)
    out = subprocess.run(
        argv, cwd=tmp_path, input=cmd.task_input(script), capture_output=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "got").read_text() == secret
    leftovers = [
        p
        for p in Path(os.environ.get("TMPDIR", "/tmp")).glob(".ferryman-task.*")
        if p.is_file() and secret.encode() in p.read_bytes()
    ]
    assert leftovers == []
    # a hook that reads stdin gets nothing (the script is not there to be read)
    out = subprocess.run(
        argv, cwd=tmp_path, input=cmd.task_input("cat; echo end"), capture_output=True, timeout=30
    )
    assert out.stdout == b"end\n"
    failing = subprocess.run(argv, input=cmd.task_input("exit 7"), capture_output=True, timeout=30)
    assert failing.returncode == 7
    assert re.fullmatch(r"[^']*", cmd.TASK_RUNNER.split("trap", 1)[0])  # no value spliced in
