"""Notifications against real receivers: an SMTP server (aiosmtpd, STARTTLS and login) on
loopback, and an HTTP server standing in for DingTalk, WeCom, Feishu, Slack and a webhook.
Signatures are checked with the formulas the providers document, computed here on their own.
Loopback is an internal destination: this install allows it as a superuser would
(``FERRYMAN_OUTBOUND_ALLOW=127.0.0.0/8``); ``test_outbound.py`` shows the refusals."""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import hmac
import http.server
import json
import socket
import ssl
import threading
from email import message_from_bytes, policy
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, unquote, urlparse

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ferryman.config.settings import Settings
from ferryman.db.models import Deploy
from ferryman.notify import dispatcher
from ferryman.outbound import parse_allow
from ferryman.services import deploys, notifications, users
from ferryman.services.audit import SYSTEM
from tests.api.world import SPACE, World, build_world
from tests.outbound_policy import allow_outbound

LOOPBACK = parse_allow("127.0.0.0/8")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    w = build_world(tmp_path_factory.mktemp("notify"))
    allow_outbound(w.db, LOOPBACK)  # what the server sets from FERRYMAN_OUTBOUND_ALLOW
    for role in ("master", "owner", "developer", "author"):
        users.update_user(w.db, SYSTEM, w.actors[role].username, email=f"{role}@example.com")
    return w


def _settings(world: World) -> Settings:
    from dataclasses import replace

    return replace(
        world.settings,
        public_url="https://deploy.example.com",
        notify_backoff_seconds=0.01,
        outbound_allow=LOOPBACK,
    )


def deliver_all(world: World, rounds: int = 20) -> None:
    async def go() -> None:
        for _ in range(rounds):
            await dispatcher.deliver_due(world.db, _settings(world))
            await asyncio.sleep(0.03)

    asyncio.run(go())


# --- email ---------------------------------------------------------------------------------


def _certificate(folder: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


class Mailbox:
    def __init__(self) -> None:
        self.mails: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        self.mails.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def _auth(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login == b"ferry" and data.password == b"pw"
    return AuthResult(success=ok)


def test_approval_requests_and_failures_are_emailed_to_the_right_people(world, tmp_path):
    box = Mailbox()
    port = _free_port()
    smtp = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        tls_context=_certificate(tmp_path),
        require_starttls=True,
        authenticator=_auth,
        auth_require_tls=True,
    )
    smtp.start()
    try:
        notifications.save_channel(
            world.db,
            SYSTEM,
            SPACE,
            "mail",
            "email",
            {
                "host": "127.0.0.1",
                "port": port,
                "tls": "starttls",
                "insecure": True,
                "user": "ferry",
                "password": "pw",
                "from": "ferryman@example.com",
                "to": ["ops@example.com"],
                "to_people": True,
            },
            events=["ticket.submitted", "deploy.failed"],
        )
        listed = notifications.list_channels(world.db, SYSTEM, SPACE)
        assert [c["settings"]["password"] for c in listed if c["name"] == "mail"] == ["***"]
        ticket = world.new_ticket()  # by the developer "author", production needs approval
        deploy_id = world.queued_deploy()
        with world.db.transaction() as s:
            s.get(Deploy, deploy_id).status = "running"
        deploys.finish(
            world.db,
            deploy_id,
            "failed",
            {
                "code": "remote_failed",
                "message": "pre_release failed (exit 3)",
                "details": {
                    "host": "10.0.0.7",
                    "stage": "pre_release",
                    "command": "make migrate",
                    "stderr_tail": "database is locked",
                },
            },
        )
        deliver_all(world)
    finally:
        smtp.stop()
    assert len(box.mails) == 2
    approval = next(m for m in box.mails if b"needs your approval" in m[1])
    assert sorted(approval[0]) == ["master@example.com", "ops@example.com", "owner@example.com"]
    mail = message_from_bytes(approval[1], policy=policy.default)
    plain = mail.get_body(("plain",))
    assert plain is not None, "the approval mail has no plain-text part"
    text = plain.get_content()
    assert f"https://deploy.example.com/s/{SPACE}/tickets/{ticket}" in text
    assert "author@example.com" not in approval[0]  # never to the submitter
    failure = next(m for m in box.mails if b"failed" in m[1])
    assert failure[0] == ["ops@example.com"]
    plain = message_from_bytes(failure[1], policy=policy.default).get_body(("plain",))
    assert plain is not None, "the failure mail has no plain-text part"
    body = plain.get_content()
    assert "10.0.0.7" in body and "pre_release" in body and "make migrate" in body
    assert "database is locked" in body
    assert f"/s/{SPACE}/deploys/{deploy_id}" in body


# --- IM robots and webhooks -----------------------------------------------------------------


class Receiver(http.server.BaseHTTPRequestHandler):
    calls: ClassVar[list[dict]] = []
    fail_first = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        type(self).calls.append({"path": self.path, "headers": dict(self.headers), "body": body})
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            self.send_response(500)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"errcode": 0, "code": 0}')

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def receiver():
    handler = type("R", (Receiver,), {"calls": [], "fail_first": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_robots_and_webhooks_get_their_payloads_with_the_documented_signatures(world, receiver):
    handler, base = receiver
    secret = "SECabc123"
    for kind in ("dingtalk", "wecom", "feishu", "slack", "webhook"):
        notifications.save_channel(
            world.db,
            SYSTEM,
            SPACE,
            f"im-{kind}",
            kind,
            {"url": f"{base}/{kind}?access_token=tok", "secret": secret},
            language="zh_CN" if kind in ("dingtalk", "feishu") else "en",
            events=["deploy.succeeded"],
        )
    deploy_id = world.queued_deploy()
    with world.db.transaction() as s:
        row = s.get(Deploy, deploy_id)
        row.status, row.release_name = "running", "20261122-070000_v1_abc1234"
    deploys.finish(world.db, deploy_id, "success", None)
    deliver_all(world)
    calls = {c["path"].split("?")[0].strip("/"): c for c in handler.calls}
    assert set(calls) == {"dingtalk", "wecom", "feishu", "slack", "webhook"}

    ding = calls["dingtalk"]
    query = parse_qs(urlparse(ding["path"]).query)
    stamp, sign = query["timestamp"][0], query["sign"][0]
    expected = base64.b64encode(
        hmac.new(secret.encode(), f"{stamp}\n{secret}".encode(), hashlib.sha256).digest()
    ).decode()
    assert unquote(sign) == expected or sign == expected
    body = json.loads(ding["body"])
    assert body["msgtype"] == "markdown" and "部署" in body["markdown"]["title"]

    feishu = json.loads(calls["feishu"]["body"])
    expected = base64.b64encode(
        hmac.new(f"{feishu['timestamp']}\n{secret}".encode(), b"", hashlib.sha256).digest()
    ).decode()
    assert feishu["sign"] == expected and feishu["msg_type"] == "post"
    assert "成功" in feishu["content"]["post"]["zh_cn"]["title"]

    wecom = json.loads(calls["wecom"]["body"])
    assert wecom["msgtype"] == "markdown" and "succeeded" in wecom["markdown"]["content"]
    assert "succeeded" in json.loads(calls["slack"]["body"])["text"]

    hook = calls["webhook"]
    signature = "sha256=" + hmac.new(secret.encode(), hook["body"], hashlib.sha256).hexdigest()
    assert hook["headers"]["X-Ferryman-Signature"] == signature
    payload = json.loads(hook["body"])
    assert payload["schema"] == 1 and payload["event"] == "deploy.succeeded"
    assert payload["data"]["deploy_id"] == deploy_id
    assert payload["link"].startswith("https://deploy.example.com/s/")
    for channel in notifications.list_channels(world.db, SYSTEM, SPACE):
        if channel["name"].startswith("im-"):
            assert channel["settings"]["secret"] == "***" and channel["settings"]["url"] == "***"
            notifications.save_channel(
                world.db,
                SYSTEM,
                SPACE,
                channel["name"],
                channel["kind"],
                channel["settings"],
                enabled=False,
            )


def test_a_channel_failing_three_times_is_delivered_once_with_every_attempt_recorded(
    world, receiver
):
    handler, base = receiver
    handler.fail_first = 3
    made = notifications.save_channel(
        world.db,
        SYSTEM,
        SPACE,
        "flaky",
        "slack",
        {"url": f"{base}/flaky"},
        events=["deploy.failed"],
    )
    deploy_id = world.queued_deploy()
    with world.db.transaction() as s:
        s.get(Deploy, deploy_id).status = "running"
    deploys.finish(world.db, deploy_id, "failed", {"code": "x", "message": "broken", "details": {}})
    assert deploys.load(world.db, deploy_id)[0].status == "failed"  # nothing waited on the channel
    deliver_all(world, rounds=40)
    rows = notifications.deliveries(world.db, SYSTEM, made["id"])
    assert len(rows) == 1 and rows[0]["status"] == "sent" and rows[0]["attempts"] == 4
    assert [a["ok"] for a in rows[0]["history"]] == [False, False, False, True]
    assert "HTTP 500" in rows[0]["history"][0]["error"]
    assert len([c for c in handler.calls if c["path"] == "/flaky"]) == 4
    notifications.save_channel(
        world.db, SYSTEM, SPACE, "flaky", "slack", {"url": f"{base}/flaky"}, enabled=False
    )


def test_a_deploy_holding_its_environment_too_long_is_announced_once(world, receiver):
    from datetime import timedelta

    from ferryman.db.models import utcnow

    handler, base = receiver
    notifications.save_channel(
        world.db,
        SYSTEM,
        SPACE,
        "locks",
        "webhook",
        {"url": f"{base}/locks"},
        events=["lock.held_long"],
    )
    deploy_id = world.queued_deploy()
    with world.db.transaction() as s:
        row = s.get(Deploy, deploy_id)
        row.status, row.started_at = "running", utcnow() - timedelta(minutes=45)
    assert notifications.warn_long_locks(world.db, 30) == 1
    assert notifications.warn_long_locks(world.db, 30) == 0  # once
    deliver_all(world)
    payload = json.loads(next(c for c in handler.calls if c["path"] == "/locks")["body"])
    assert payload["event"] == "lock.held_long" and payload["data"]["minutes"] >= 45
    assert payload["data"]["deploy_id"] == deploy_id
    with world.db.transaction() as s:
        s.get(Deploy, deploy_id).status = "failed"
