"""The whole web UI under a path prefix: Debian's nginx serves a real `ferryman serve
--root-path /ferryman` at http://proxy/ferryman/ (stripping the prefix, as
docs/operations.md says). Every link, form, script and console stream of every page a
signed-in admin reaches stays under the prefix and answers; redirects keep it too."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections import deque
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
import websockets
import yaml
from websockets.typing import Origin

from tests.conftest import SERVICES
from tests.helpers import Repo, project_config, unique
from tests.ops.servers import Process, cli
from tests.ops.test_first_run import fresh_home
from tests.ops.test_nginx import _nginx

pytestmark = pytest.mark.fleet
PREFIX = "/ferryman"
PASSWORD = "correct horse battery"
URL_ATTRIBUTES = {"href", "action", "src", "formaction", "data-stream", "data-refs"}
URL_ATTRIBUTES |= {"data-detect", "data-ssh-check", "data-for"}
MOST_PAGES = 80


class Links(HTMLParser):
    """Every address-bearing attribute of a page: (tag, attribute, value)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in URL_ATTRIBUTES and value is not None:
                self.found.append((tag, name, value))


def links(html: str) -> list[tuple[str, str, str]]:
    parser = Links()
    parser.feed(html)
    return parser.found


def proxy_config(where: Path, listen: str, upstream: int) -> Path:
    """nginx serving Ferryman under /ferryman/ only, with the WebSocket upgrade."""
    (where / "logs").mkdir(parents=True)
    config = where / "nginx.conf"
    config.write_text(
        f"""
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
    map $http_upgrade $ferryman_connection {{ default upgrade; '' ''; }}
    server {{
        listen {listen};
        location / {{ return 404 "not Ferryman's\\n"; }}
        location {PREFIX}/ {{
            proxy_pass http://127.0.0.1:{upstream}/;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $ferryman_connection;
        }}
    }}
}}
"""
    )
    return config


def test_every_page_link_form_and_console_stream_stays_under_the_path_prefix(
    fleet, git_host, targets, tmp_path
):
    nginx = _nginx()
    home = fresh_home(tmp_path, fleet)
    repo = Repo(git_host, tmp_path, unique("prefixed"))
    repo.commit({"index.html": "under a prefix\n"}, tag="v1")
    (tmp_path / "project.yaml").write_text(
        yaml.safe_dump(project_config(repo.name, repo.url, targets))
    )
    listen = f"{SERVICES['root_path_proxy']}:8080"
    public = f"http://{listen}"
    env: dict[str, Any] = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    server = Process(home, tmp_path / "serve.log", args=("--root-path", PREFIX), **env)
    with server:
        config = proxy_config(tmp_path / "nginx", listen, server.port)
        proxy = subprocess.Popen(
            [nginx, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        web = httpx.Client(base_url=public, timeout=30)
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if httpx.get(f"{public}{PREFIX}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proxy.poll() is None and time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.2)

            cli(home, "admin", "create-user", "alice", "--password", PASSWORD, "--superuser", **env)
            cli(home, "login", "--server", f"{public}{PREFIX}", "--username", "alice",
                "--password", PASSWORD, **env)  # fmt: skip
            cli(home, "env", "set", "production", "--no-approval", **env)
            cli(home, "apply", "-f", str(tmp_path / "project.yaml"), **env)
            done = cli(
                home, "deploy", repo.name, "--env", "production", "--ref", "v1", "--wait", **env
            )
            assert "succeeded" in done.stdout
            deploy_id = int(done.stdout.split("#", 1)[1].split()[0])

            # signed out: the sign-in redirect keeps the prefix, and asks to come back
            away = web.get(f"{PREFIX}/s/default/deploys")
            assert away.status_code == 303
            assert away.headers["location"] == f"{PREFIX}/login?next=/s/default/deploys"
            login = web.get(away.headers["location"])
            assert login.status_code == 200
            assert ("form", "action", f"{PREFIX}/login") in links(login.text)
            signed = web.post(
                f"{PREFIX}/login",
                data={"username": "alice", "password": PASSWORD, "next": "/s/default/deploys"},
            )
            assert signed.status_code == 303
            assert signed.headers["location"] == f"{PREFIX}/s/default/deploys"

            seen: set[str] = set()
            queue = deque([f"{PREFIX}/", f"{PREFIX}/s/default/deploys/{deploy_id}"])
            streams: list[str] = []
            while queue and len(seen) < MOST_PAGES:
                address = queue.popleft()
                if address in seen:
                    continue
                seen.add(address)
                answer = web.get(address, follow_redirects=True)
                assert answer.status_code == 200, (address, answer.status_code)
                assert urlsplit(str(answer.url)).path.startswith(PREFIX + "/"), answer.url
                if "text/html" not in answer.headers.get("content-type", ""):
                    continue
                for tag, attribute, value in links(answer.text):
                    if value.startswith(("#", "?", "mailto:", "data:")):
                        continue
                    target = urlsplit(urljoin(str(answer.url), value))
                    assert target.netloc == listen, (address, tag, attribute, value)
                    assert target.path.startswith(PREFIX + "/"), (address, tag, attribute, value)
                    if attribute == "data-stream":
                        streams.append(target.path)
                    elif (
                        tag in ("a", "link", "script", "img")
                        and attribute in ("href", "src")
                        and "/api/" not in target.path
                    ):
                        queue.append(target.path + (f"?{target.query}" if target.query else ""))
            assert len(seen) >= 15, sorted(seen)  # the crawl reached the whole navigation
            assert f"{PREFIX}/static/app.css" in {a.split("?")[0] for a in seen}

            # a form's redirect keeps the prefix (the language switch sends the viewer back)
            page = web.get(f"{PREFIX}/s/default/projects")
            csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            switched = web.post(
                f"{PREFIX}/language",
                data={"lang": "zh-CN", "back": "/s/default/projects", "csrf": csrf},
            )
            assert switched.status_code == 303
            assert switched.headers["location"] == f"{PREFIX}/s/default/projects"

            # the console's stream, as the page script opens it, through the proxy
            assert streams == [f"{PREFIX}/api/v1/deploys/{deploy_id}/stream"]
            session = web.cookies["ferryman_session"]

            async def console() -> list[dict]:
                got = []
                async with websockets.connect(
                    f"ws://{listen}{streams[0]}?after=0",
                    origin=Origin(public),
                    additional_headers={"Cookie": f"ferryman_session={session}"},
                    open_timeout=20,
                ) as ws:
                    async for raw in ws:
                        got.append(json.loads(raw))
                        if got[-1]["type"] == "end":
                            break
                return got

            messages = asyncio.run(asyncio.wait_for(console(), 60))
            assert messages[-1]["type"] == "end" and messages[-1]["status"] == "success"
            # an API error under the prefix is still the API's JSON, not a page
            missing = web.get(f"{PREFIX}/api/v1/deploys/999999")
            assert missing.status_code == 404
            assert missing.headers["content-type"].startswith("application/json")
        finally:
            web.close()
            proxy.terminate()
            proxy.wait(30)
