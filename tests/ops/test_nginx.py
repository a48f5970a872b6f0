"""Debian's nginx in front of a real `ferryman serve --proxy-headers`, with contrib/nginx's
example config, TLS by a certificate made here: sign-in, a deploy and its live console (the
CLI's and a browser session's WebSocket) all go through the proxy."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
import yaml
from sqlalchemy import select
from websockets.typing import Origin

from ferryman.db.models import AuditEntry
from ferryman.db.session import Database
from tests.helpers import Repo, project_config, read_live, unique
from tests.ops.servers import Process, cli
from tests.ops.test_first_run import fresh_home

pytestmark = pytest.mark.fleet
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
NGINX_PORTS = (18130, 18131)  # this suite's own loopback ports for the proxy


def certificate(where: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the proxy's name in this test)."""
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def nginx_config(where: Path, upstream: int, http: int, https: int, cert: Path, key: Path) -> Path:
    """contrib/nginx/ferryman.conf on loopback ports, inside a main config of its own."""
    site = (ROOT / "contrib" / "nginx" / "ferryman.conf").read_text()
    site = "\n".join(line for line in site.splitlines() if "[::]" not in line)
    for old, new in (
        ("server 127.0.0.1:8080;", f"server 127.0.0.1:{upstream};"),
        ("listen 80;", f"listen 127.0.0.1:{http};"),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https} ssl http2;"),
        ("/etc/ssl/certs/ferryman.pem", str(cert)),
        ("/etc/ssl/private/ferryman.key", str(key)),
    ):
        assert old in site, old
        site = site.replace(old, new)
    (where / "logs").mkdir()
    main = f"""
daemon off;
master_process on;
worker_processes 1;
pid {where}/nginx.pid;
error_log {where}/logs/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {where}/logs/access.log;
    client_body_temp_path {where}/body;
    proxy_temp_path {where}/proxy;
    fastcgi_temp_path {where}/fastcgi;
    uwsgi_temp_path {where}/uwsgi;
    scgi_temp_path {where}/scgi;
{site}
}}
"""
    path = where / "nginx.conf"
    path.write_text(main)
    return path


def _nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if not found:
        pytest.skip("Debian's nginx is not installed: run scripts/setup-system --test")
    return found


def test_sign_in_a_deploy_and_its_live_console_through_nginx_with_tls(
    fleet, git_host, targets, tmp_path
):
    nginx = _nginx()
    home = fresh_home(tmp_path, fleet)
    repo = Repo(git_host, tmp_path, unique("proxied"))
    repo.commit({"index.html": "through the proxy\n"}, tag="v1")
    (tmp_path / "project.yaml").write_text(
        yaml.safe_dump(project_config(repo.name, repo.url, targets))
    )
    cert, key = certificate(tmp_path)
    (tmp_path / "nginx").mkdir()
    http_port, https_port = NGINX_PORTS  # fixed: ephemeral ones may be handed out twice
    env: dict[str, Any] = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "SSL_CERT_FILE": str(cert)}
    server = Process(home, tmp_path / "serve.log", args=("--proxy-headers",), **env)
    with server:
        config = nginx_config(tmp_path / "nginx", server.port, http_port, https_port, cert, key)
        test = subprocess.run([nginx, "-t", "-c", str(config)], capture_output=True, text=True)
        assert test.returncode == 0, test.stderr
        proxy = subprocess.Popen(
            [nginx, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        public = f"https://127.0.0.1:{https_port}"
        web = httpx.Client(
            base_url=public, verify=ssl.create_default_context(cafile=str(cert)), timeout=30
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if web.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proxy.poll() is None and time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.2)
            plain = httpx.get(f"http://127.0.0.1:{http_port}/login", timeout=10)
            assert plain.status_code == 301
            assert plain.headers["location"] == "https://127.0.0.1/login"

            cli(home, "admin", "create-user", "alice", "--password", PASSWORD, "--superuser", **env)
            cli(
                home,
                "login",
                "--server",
                public,
                "--username",
                "alice",
                "--password",
                PASSWORD,
                **env,
            )
            cli(home, "env", "set", "production", "--no-approval", **env)
            cli(home, "apply", "-f", str(tmp_path / "project.yaml"), **env)
            done = cli(
                home, "deploy", repo.name, "--env", "production", "--ref", "v1", "--wait", **env
            )
            assert "succeeded" in done.stdout  # followed over wss:// through nginx
            deploy_id = int(done.stdout.split("#", 1)[1].split()[0])
            assert {read_live(h, repo.name, "index.html") for h in targets} == {
                "through the proxy\n"
            }

            # a browser's sign-in: the cookie is Secure because nginx said the scheme is https;
            # a client's own X-Forwarded-For is not believed
            signed = web.post(
                "/api/v1/auth/session",
                json={"username": "alice", "password": PASSWORD},
                headers={"X-Forwarded-For": "203.0.113.7"},
            )
            assert signed.status_code == 200, signed.text
            cookie = signed.headers["set-cookie"]
            assert "ferryman_session=" in cookie and "Secure" in cookie and "HttpOnly" in cookie
            session = cookie.split("ferryman_session=", 1)[1].split(";", 1)[0]

            # the browser console's WebSocket: the session cookie, the page's own origin
            context = ssl.create_default_context(cafile=str(cert))

            async def console() -> list[dict]:
                got = []
                async with websockets.connect(
                    f"wss://127.0.0.1:{https_port}/api/v1/deploys/{deploy_id}/stream?after=0",
                    ssl=context,
                    origin=Origin(public),
                    additional_headers={"Cookie": f"ferryman_session={session}"},
                    open_timeout=20,
                ) as ws:
                    async for raw in ws:
                        got.append(json.loads(raw))
                        if got[-1]["type"] == "end":
                            break
                return got

            messages = asyncio.run(console())
            assert messages[-1] == {
                "type": "end",
                "status": "success",
                "next": messages[-1]["next"],
            }
            lines = [m["text"] for m in messages if m["type"] == "line"]
            assert any("switch" in line for line in lines)
        finally:
            web.close()
            proxy.terminate()
            proxy.wait(30)

    db = Database(f"sqlite:///{home / 'ferryman.db'}")
    try:
        with db.read() as s:
            ips = {
                row.ip
                for row in s.scalars(select(AuditEntry).where(AuditEntry.action == "user.login"))
            }
    finally:
        db.dispose()
    assert ips == {"127.0.0.1"}  # the proxy's word for the client, never the client's own
    assert "upgrade" not in (tmp_path / "nginx" / "logs" / "error.log").read_text().lower()
