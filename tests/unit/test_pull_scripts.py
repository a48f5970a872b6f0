"""The scripts pull-mode hosts run (``commands/agent_script.py``), run for real by bash in a
temp dir against a small HTTP server of the test's own that plays Ferryman's agent endpoints:
it serves the artifact and the script, and takes (or refuses) each report. No SSH, no fleet:
the host is this machine and its webroot a symlink under the temp dir."""

from __future__ import annotations

import email.parser
import hashlib
import io
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ferryman.commands import agent_script
from ferryman.commands.agent_script import EXIT_UNCONFIRMED, ScriptPlan
from ferryman.config.project import HealthCheck

HOST = "h1"


@dataclass
class Agent:
    """What the fake server serves and what it was told."""

    url: str = ""
    artifact: bytes = b""
    script: str = ""
    due: bool = True
    refuse: set[str] = field(default_factory=set)  # phases whose report gets a 409
    reports: list[dict[str, str]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    lose_scripts: int = 0  # this many fetches of the script fail (a lost response)

    def said(self) -> list[tuple[str, str, str]]:
        return [(r["phase"], r["exit_code"], r["status"]) for r in self.reports]


def _form(content_type: str, body: bytes) -> dict[str, str]:
    message = email.parser.BytesParser().parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    fields: dict[str, str] = {}
    for part in message.walk():
        if part.is_multipart():
            continue
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        fields[str(name)] = payload.decode()
    return fields


@pytest.fixture
def agent() -> Iterator[Agent]:
    state = Agent()
    prefix = f"/api/v1/agent/{HOST}"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, code: int, body: bytes = b"", etag: str = "") -> None:
            self.send_response(code)
            if etag:
                self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            state.tokens.append(self.headers.get("Authorization", ""))
            if self.path == prefix:
                seen = self.headers.get("If-None-Match")
                if not state.due or seen == '"v1"':
                    self._send(304)
                else:
                    self._send(200, b'{"due": true}', etag='"v1"')
            elif self.path == prefix + "/deploy":
                if state.lose_scripts:
                    state.lose_scripts -= 1
                    self._send(502)
                else:
                    self._send(200, state.script.encode())
            elif self.path.startswith(prefix + "/artifact/"):
                self._send(200, state.artifact)
            else:
                self._send(404)

        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            fields = _form(self.headers["Content-Type"], self.rfile.read(length))
            state.reports.append(fields)
            self._send(409 if fields["phase"] in state.refuse else 200, b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _artifact(files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """The host's directories and its agent token."""
    (tmp_path / "www").mkdir()
    (tmp_path / "token").write_text("fma_secret_token")
    return tmp_path


def _plan(host: Path, agent: Agent, release: str, **kw: object) -> ScriptPlan:
    log = host / "hooks.log"
    values: dict[str, object] = {
        "server": agent.url,
        "host": HOST,
        "task_id": 7,
        "action": "deploy",
        "release": release,
        "webroot": str(host / "www" / "site"),
        "releases": str(host / "releases"),
        "shared_dir": str(host / "shared"),
        "stop": f'echo "stop $(basename "$PWD")" >> {log}',
        "start": f'echo "start $(basename "$PWD") $GREETING" >> {log}',
        "variables": {"GREETING": "hello 'world'"},
        "task_timeout": 30,
    }
    values.update(kw)
    return ScriptPlan(**values)  # type: ignore[arg-type]


def _run(script: str, host: Path, **env: str) -> subprocess.CompletedProcess[str]:
    path = host / "run.sh"
    path.write_text(script)
    return subprocess.run(
        ["bash", str(path)],
        env={"PATH": "/usr/bin:/bin", "FERRYMAN_TOKEN_FILE": str(host / "token"), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _ship(agent: Agent, release: str, text: str) -> str:
    agent.artifact = _artifact({"index.html": text, ".ferryman-release": f"release={release}\n"})
    return hashlib.sha256(agent.artifact).hexdigest()


def _live(host: Path) -> str:
    return (host / "www" / "site").readlink().name


def _deploy(host: Path, agent: Agent, release: str, text: str, **kw: object):
    sha = _ship(agent, release, text)
    return _run(agent_script.deploy_script(_plan(host, agent, release, sha256=sha, **kw)), host)


@pytest.mark.parametrize(
    "script",
    [
        agent_script.deploy_script(
            ScriptPlan("http://127.0.0.1:1", "h", 1, "deploy", "r", "/w", "/r", "/s", ["a b"])
        ),
        agent_script.rollback_script(
            ScriptPlan("http://127.0.0.1:1", "h", 1, "rollback", "r", "/w", "/r", "/s")
        ),
        agent_script.poller("http://127.0.0.1:1", "h"),
        agent_script.install_script("http://127.0.0.1:1", "h", "tok"),
        agent_script.install_script("http://127.0.0.1:1", "h", "tok", cron=True),
        agent_script.uninstall_script(),
    ],
    ids=["deploy", "rollback", "poller", "install", "install-cron", "uninstall"],
)
def test_every_generated_script_is_valid_bash(script):
    subprocess.run(["bash", "-n"], input=script, text=True, check=True, timeout=10)


def test_a_deploy_downloads_verifies_unpacks_switches_starts_and_reports_each_phase(host, agent):
    done = _deploy(host, agent, "r1", "v1\n", shared=["logs"], checks=[HealthCheck(command="true")])
    assert done.returncode == 0, done.stderr
    assert _live(host) == "r1"
    assert (host / "www" / "site" / "index.html").read_text() == "v1\n"
    assert (host / "releases" / "r1" / "logs").resolve() == host / "shared" / "logs"
    assert (host / "hooks.log").read_text() == "stop r1\nstart r1 hello 'world'\n"
    assert agent.said() == [
        ("pre-deploy", "0", ""),
        ("do-deploy", "0", ""),
        ("post-deploy", "0", "success"),
    ]
    assert set(agent.tokens) == {"Bearer fma_secret_token"}
    assert not list((host / "releases").glob("*.ferryman-partial*"))


def test_a_host_already_on_the_release_reports_skipped_and_changes_nothing(host, agent):
    assert _deploy(host, agent, "r1", "v1\n").returncode == 0
    agent.reports.clear()
    again = _deploy(host, agent, "r1", "v1\n")
    assert again.returncode == 0, again.stderr
    assert agent.said() == [("pre-deploy", "0", "skipped")]
    assert (host / "hooks.log").read_text() == "stop r1\nstart r1 hello 'world'\n"


def test_failed_checks_switch_back_to_the_previous_release_and_report_rolled_back(host, agent):
    assert _deploy(host, agent, "r1", "v1\n").returncode == 0
    agent.reports.clear()
    failing = HealthCheck(command="false", retries=2, interval=0.1)
    done = _deploy(host, agent, "r2", "v2\n", checks=[failing])
    assert done.returncode == 1
    assert _live(host) == "r1"
    assert agent.said() == [
        ("pre-deploy", "0", ""),
        ("do-deploy", "0", ""),
        ("post-deploy", "1", "rolled_back"),
    ]
    assert "command false: failed after 2 tries" in agent.reports[-1]["output"]
    assert (host / "hooks.log").read_text().splitlines()[-1] == "start r1 hello 'world'"


def test_an_artifact_that_is_not_what_the_server_built_is_never_unpacked(host, agent):
    plan = _plan(host, agent, "r1", sha256="0" * 64)
    _ship(agent, "r1", "tampered\n")
    done = _run(agent_script.deploy_script(plan), host)
    assert done.returncode == 12
    assert agent.said() == [("pre-deploy", "12", "failed")]
    assert "sha256 mismatch" in agent.reports[0]["output"]
    assert not (host / "www" / "site").exists()
    assert list((host / "releases").iterdir()) == []


def test_a_host_whose_go_ahead_is_refused_never_switches_and_keeps_no_release(host, agent):
    assert _deploy(host, agent, "r1", "v1\n").returncode == 0
    agent.refuse = {"pre-deploy"}
    done = _deploy(host, agent, "r2", "v2\n")
    assert done.returncode == EXIT_UNCONFIRMED
    assert _live(host) == "r1"
    assert sorted(p.name for p in (host / "releases").iterdir()) == ["r1"]


def test_a_report_refused_after_the_switch_switches_the_host_back_by_itself(host, agent):
    assert _deploy(host, agent, "r1", "v1\n").returncode == 0
    agent.refuse = {"do-deploy"}
    done = _deploy(host, agent, "r2", "v2\n")
    assert done.returncode == EXIT_UNCONFIRMED
    assert _live(host) == "r1"
    assert (host / "hooks.log").read_text().splitlines()[-1] == "start r1 hello 'world'"


def test_a_missing_required_command_stops_the_deploy_before_anything_changes(host, agent):
    done = _deploy(host, agent, "r1", "v1\n", commands=["no-such-command-anywhere"])
    assert done.returncode == 10
    assert agent.said() == [("pre-deploy", "10", "failed")]
    assert "missing command no-such-command-anywhere" in agent.reports[0]["output"]
    assert not (host / "www" / "site").exists()


def test_a_rollback_switches_to_a_complete_release_and_refuses_an_incomplete_one(host, agent):
    assert _deploy(host, agent, "r1", "v1\n").returncode == 0
    assert _deploy(host, agent, "r2", "v2\n").returncode == 0
    agent.reports.clear()
    back = _run(agent_script.rollback_script(_plan(host, agent, "r1", action="rollback")), host)
    assert back.returncode == 0, back.stderr
    assert _live(host) == "r1"
    assert agent.said() == [("rollback", "0", "success")]
    (host / "releases" / "r0").mkdir()  # no .ferryman-release: never finished
    refused = _run(agent_script.rollback_script(_plan(host, agent, "r0", action="rollback")), host)
    assert refused.returncode == 13
    assert _live(host) == "r1"


def test_the_poller_runs_the_script_only_when_something_is_due_and_once_per_etag(host, agent):
    marker = host / "ran"
    agent.script = f"echo ran >> {marker}\n"
    poll = agent_script.poller(agent.url, HOST, str(host / "token"))
    state = str(host / "state")
    assert _run(poll, host, FERRYMAN_STATE=state).returncode == 0
    assert marker.read_text() == "ran\n"
    assert (host / "state" / "etag").read_text().strip() == '"v1"'
    assert _run(poll, host, FERRYMAN_STATE=state).returncode == 0  # same ETag: 304
    assert marker.read_text() == "ran\n"
    agent.due = False
    (host / "state" / "etag").unlink()
    assert _run(poll, host, FERRYMAN_STATE=state).returncode == 0
    assert marker.read_text() == "ran\n"


def test_a_script_whose_fetch_failed_is_fetched_again_at_the_next_poll(host, agent):
    """The ETag is kept only once the script is here: kept before, a lost response left the
    poller answered 304 until the task changed, the task never run."""
    marker = host / "ran"
    agent.script = f"echo ran >> {marker}\n"
    agent.lose_scripts = 1
    poll = agent_script.poller(agent.url, HOST, str(host / "token"))
    state = str(host / "state")
    assert _run(poll, host, FERRYMAN_STATE=state).returncode == 0
    assert not marker.exists() and not (host / "state" / "etag").exists()
    assert _run(poll, host, FERRYMAN_STATE=state).returncode == 0
    assert marker.read_text() == "ran\n"
    assert (host / "state" / "etag").read_text().strip() == '"v1"'
    assert _run(poll, host, FERRYMAN_STATE=state).returncode == 0  # now 304: not again
    assert marker.read_text() == "ran\n"


@pytest.mark.parametrize("claim", ["web1:22~0a1b2c3d4e5f", "@/etc/hostname", "<x $(id) 'q'"])
def test_every_report_carries_the_claim_of_the_fetch_verbatim(host, agent, claim):
    """The claim is the fence the server takes reports behind (``services/agents.report``):
    every report sends it back as it was written into the script — never read as a file
    (``@``, ``<``) nor run."""
    assert _deploy(host, agent, "r1", "v1\n", claim=claim).returncode == 0
    assert [r["claim"] for r in agent.reports] == [claim] * 3
    agent.reports.clear()
    back = agent_script.rollback_script(_plan(host, agent, "r1", action="rollback", claim=claim))
    assert _run(back, host).returncode == 0
    assert agent.reports and {r["claim"] for r in agent.reports} == {claim}
