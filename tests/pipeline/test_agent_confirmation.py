"""The generated pull-mode deploy script, run as it is in a temporary directory against a real
HTTP server on loopback that answers its reports the way the Ferryman server can: taken,
refused (the deploy has ended) or not at all. A host switches only with the server's go-ahead,
and switches back by itself when a later report is refused."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ferryman.commands import agent_script


@dataclass
class Answers:
    """What the fake server says to each phase's report (HTTP status; 0: drop the line)."""

    artifact: bytes = b""
    status: dict[str, int] = field(default_factory=dict)
    heard: list[str] = field(default_factory=list)


def _handler(answers: Answers) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(answers.artifact)))
            self.end_headers()
            self.wfile.write(answers.artifact)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            phase = body.split(b'name="phase"\r\n\r\n', 1)[1].split(b"\r\n", 1)[0].decode()
            answers.heard.append(phase)
            code = answers.status.get(phase, 200)
            if code == 0:  # the server went away mid-answer
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Answers]]:
    answers = Answers()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(answers))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", answers
    finally:
        httpd.shutdown()
        httpd.server_close()


def _artifact() -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        for name, text in (("index.html", b"v2\n"), (".ferryman-release", b"r2\n")):
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))
    return data.getvalue()


def _run(tmp_path: Path, url: str, answers: Answers) -> subprocess.CompletedProcess[str]:
    """r1 is live; the script deploys r2, whose post_release writes a marker."""
    releases, webroot = tmp_path / "releases", tmp_path / "www"
    (releases / "r1").mkdir(parents=True)
    (releases / "r1" / ".ferryman-release").write_text("r1\n")
    os.symlink(releases / "r1", webroot)
    token = tmp_path / "token"
    token.write_text("t")
    answers.artifact = _artifact()
    plan = agent_script.ScriptPlan(
        server=url,
        host="127.0.0.1:22",
        task_id=7,
        action="deploy",
        release="r2",
        webroot=str(webroot),
        releases=str(releases),
        shared_dir=str(tmp_path / "shared"),
        sha256=hashlib.sha256(answers.artifact).hexdigest(),
        start=f'echo "$PWD" >> {tmp_path}/started',
        task_timeout=20,
        download_timeout=20,
    )
    script = tmp_path / "run.sh"
    script.write_text(agent_script.deploy_script(plan))
    env = {**os.environ, "FERRYMAN_TOKEN_FILE": str(token)}
    return subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=120
    )


def _live(tmp_path: Path) -> str:
    return os.path.basename(os.readlink(tmp_path / "www"))


def _started(tmp_path: Path) -> list[str]:
    path = tmp_path / "started"
    return [os.path.basename(p) for p in path.read_text().split()] if path.exists() else []


def test_a_host_whose_deploy_the_server_confirms_switches_and_reports_every_phase(tmp_path, server):
    url, answers = server
    done = _run(tmp_path, url, answers)
    assert done.returncode == 0, done.stderr
    assert _live(tmp_path) == "r2"
    assert answers.heard == ["pre-deploy", "do-deploy", "post-deploy"]


def test_a_host_refused_its_go_ahead_never_switches_and_leaves_no_new_release(tmp_path, server):
    url, answers = server
    answers.status["pre-deploy"] = 409
    done = _run(tmp_path, url, answers)
    assert done.returncode == agent_script.EXIT_UNCONFIRMED, done.stderr
    assert "did not confirm the deploy: not switching" in done.stderr
    assert _live(tmp_path) == "r1"
    assert sorted(os.listdir(tmp_path / "releases")) == ["r1"]
    assert _started(tmp_path) == []  # not even the stop/start hooks ran
    assert answers.heard == ["pre-deploy"]


def test_a_host_that_cannot_reach_the_server_for_its_go_ahead_does_not_switch(tmp_path, server):
    url, answers = server
    answers.status["pre-deploy"] = 0
    done = _run(tmp_path, url, answers)
    assert done.returncode == agent_script.EXIT_UNCONFIRMED, done.stderr
    assert _live(tmp_path) == "r1"
    assert set(answers.heard) == {"pre-deploy"}


def test_a_host_whose_report_is_refused_after_the_switch_switches_back_and_restarts(
    tmp_path, server
):
    url, answers = server
    answers.status["do-deploy"] = 409
    done = _run(tmp_path, url, answers)
    assert done.returncode == agent_script.EXIT_UNCONFIRMED, done.stderr
    assert "switching back to r1" in done.stderr
    assert _live(tmp_path) == "r1"
    assert _started(tmp_path) == ["r2", "r1"]  # started there, then here again
    assert answers.heard == ["pre-deploy", "do-deploy"]


def test_a_refused_success_switches_back_but_an_unanswered_one_keeps_the_release(tmp_path, server):
    url, answers = server
    answers.status["post-deploy"] = 409
    refused = _run(tmp_path / "a", url, answers)
    assert refused.returncode == agent_script.EXIT_UNCONFIRMED, refused.stderr
    assert _live(tmp_path / "a") == "r1"

    # no answer at all: the server may have taken it, so the host keeps what it reported
    # (a server that did not is told so when the host is marked unreachable and told back)
    answers.status["post-deploy"] = 0
    unanswered = _run(tmp_path / "b", url, answers)
    assert unanswered.returncode == 0, unanswered.stderr
    assert "could not report post-deploy" in unanswered.stderr
    assert _live(tmp_path / "b") == "r2"
