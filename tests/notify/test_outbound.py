"""Server-side requests a user can aim (notification URLs, SMTP): internal destinations are
refused after DNS resolution unless a superuser allows them, the checked address is the one
connected to (DNS rebinding cannot move a request), redirects are not followed and nothing a
receiver answers is kept beyond a status line.

Only loopback is ever connected to: refusals of other ranges are shown on the checks
themselves (address literals, or names a stub resolver answers), which connect to nothing.
Receivers listen on ``NET.20x``, this worker's range of ``$FERRYMAN_TEST_NET`` (conftest)."""

from __future__ import annotations

import asyncio
import datetime
import http.server
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ferryman.config.settings import load_settings
from ferryman.errors import ConfigError, ValidationError
from ferryman.notify import dispatcher
from ferryman.outbound import Outbound, Refused, parse_allow
from ferryman.services import notifications
from ferryman.services.audit import SYSTEM
from tests.api.world import SPACE, World, build_world
from tests.conftest import BASE_NET, NET
from tests.outbound_policy import allow_outbound

A, B, C = f"{NET}.201", f"{NET}.202", f"{NET}.203"  # receivers, this xdist worker's own
SECRET = "TOP-SECRET-internal-token-7f3a"

INTERNAL = [
    ("127.0.0.1", "loopback"),
    (f"{BASE_NET}.201", "loopback"),  # not NET: every xdist worker must collect the same ids
    ("::1", "loopback"),
    ("169.254.169.254", "link-local"),  # cloud metadata
    ("fe80::1", "link-local"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("100.64.0.1", "shared (CGNAT)"),
    ("100.127.255.254", "shared (CGNAT)"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.2.10", "reserved"),
    ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
    ("::ffff:169.254.169.254", "link-local"),
    ("::ffff:10.0.0.1", "private"),
    ("::127.0.0.1", "loopback"),  # IPv4-compatible
    ("2002:a9fe:a9fe::1", "link-local"),  # 6to4 of 169.254.169.254
    ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
]


def stub(answers: dict[str, Sequence[Sequence[str]]]) -> tuple[Callable[..., list[str]], list]:
    """A resolver answering each name with its next answer (the last one repeats)."""
    asked: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        seen = asked.count(host)
        choices = answers[host]
        return list(choices[min(seen, len(choices)) - 1])

    return resolve, asked


# --- the checks (pure: nothing is connected to) ------------------------------------------


@pytest.mark.parametrize(("address", "kind"), INTERNAL)
def test_the_check_refuses_every_internal_range_by_name_and_address(address: str, kind: str):
    out = Outbound()
    with pytest.raises(Refused) as literal:
        out.destination(address, 443, "host")
    assert literal.value.message.startswith("host: ")
    assert kind in literal.value.message and "FERRYMAN_OUTBOUND_ALLOW" in literal.value.message
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(Refused, match=r"^url: "):
        out.check_url(f"https://{host}/hook")
    resolver, _ = stub({"hooks.example.test": [[address]]})
    with pytest.raises(Refused) as named:
        Outbound(resolver=resolver).check_url("https://hooks.example.test/x")
    shown = str(ipaddress.ip_address(address))
    assert f"hooks.example.test resolves to {shown}, a {kind}" in named.value.message
    assert named.value.details["address"] == shown


def test_public_addresses_pass_and_a_name_with_any_internal_answer_is_refused():
    resolver, _ = stub({"ok.test": [["93.184.216.34", "2606:2800::1"]], "mixed.test": [[]]})
    out = Outbound(resolver=resolver)
    assert str(out.check_url("https://ok.test/x").ip) == "93.184.216.34"
    assert str(out.destination("8.8.8.8", 25, "host").ip) == "8.8.8.8"
    resolver, _ = stub({"mixed.test": [["93.184.216.34", "169.254.169.254"]]})
    with pytest.raises(Refused, match=r"169\.254\.169\.254"):
        Outbound(resolver=resolver).check_url("http://mixed.test/")
    with pytest.raises(Refused, match="cannot resolve"):
        Outbound(resolver=stub({"none.test": [[]]})[0]).check_url("http://none.test/")


def test_obfuscated_loopback_spellings_are_refused_after_resolution():
    for url in ("http://2130706433/", "http://0x7f.1/", "http://127.1/", "http://localhost/"):
        with pytest.raises(Refused, match="loopback"):
            Outbound().check_url(url)


def test_the_allow_list_lets_only_its_networks_through():
    out = Outbound(allow=parse_allow("10.1.2.0/24, 127.0.0.0/8"))
    assert str(out.destination("10.1.2.5", 25, "host").ip) == "10.1.2.5"
    assert str(out.destination("127.0.0.1", 25, "host").ip) == "127.0.0.1"
    for address in ("10.1.3.5", "169.254.169.254", "::1"):
        with pytest.raises(Refused):
            out.destination(address, 25, "host")
    settings = load_settings(
        {"FERRYMAN_HOME": "/nonexistent", "FERRYMAN_OUTBOUND_ALLOW": "10.1.2.0/24"}
    )
    assert settings.outbound_allow == (ipaddress.ip_network("10.1.2.0/24"),)
    assert load_settings({"FERRYMAN_HOME": "/nonexistent"}).outbound_allow == ()
    with pytest.raises(ConfigError, match="FERRYMAN_OUTBOUND_ALLOW"):
        parse_allow("10.1.2.0/24,intranet")


# --- receivers ----------------------------------------------------------------------------


class Receiver(http.server.BaseHTTPRequestHandler):
    calls: ClassVar[list[dict[str, Any]]] = []
    answer: ClassVar[tuple[int, dict[str, str], bytes]] = (200, {}, b'{"errcode": 0}')

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        type(self).calls.append({"path": self.path, "headers": dict(self.headers), "body": body})
        status, headers, content = type(self).answer
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, *args: object) -> None:
        return


class Server:
    def __init__(self, address: str, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.handler: type[Receiver] = type("R", (Receiver,), {"calls": []})
        self.http = http.server.ThreadingHTTPServer((address, port), self.handler)
        if tls is not None:
            self.http.socket = tls.wrap_socket(self.http.socket, server_side=True)
        self.port = int(self.http.server_address[1])
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    @property
    def calls(self) -> list[dict[str, Any]]:
        return self.handler.calls

    def answer(self, status: int, body: bytes, **headers: str) -> None:
        self.handler.answer = (status, headers, body)

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def servers() -> Iterator[Callable[..., Server]]:
    made: list[Server] = []

    def start(address: str, port: int = 0, tls: ssl.SSLContext | None = None) -> Server:
        made.append(Server(address, port, tls))
        return made[-1]

    yield start
    for server in made:
        server.stop()


def _certificate(folder: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / f"{name}.pem", folder / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def _server_tls(folder: Path, name: str, seen: list[str | None]) -> tuple[ssl.SSLContext, Path]:
    cert, key = _certificate(folder, name)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def remember(_sock: object, server_name: str | None, _context: ssl.SSLContext) -> None:
        seen.append(server_name)  # the name the client asked for (None: it sent no SNI)

    context.sni_callback = remember
    return context, cert


# --- pinning, redirects and bodies (Outbound.post against loopback receivers) --------------


def test_a_rebinding_name_reaches_only_the_address_that_was_checked(servers):
    allowed = servers(A)
    forbidden = servers(B, allowed.port)  # same port: only the address differs
    resolver, asked = stub({"hooks.test": [[A], [B]]})
    out = Outbound(allow=parse_allow(f"{A}/32"), resolver=resolver)
    reply = asyncio.run(out.post(f"http://hooks.test:{allowed.port}/hook", json={"x": 1}))
    assert reply.status == 200 and asked == ["hooks.test"]  # resolved once, then pinned
    assert len(allowed.calls) == 1 and forbidden.calls == []
    assert allowed.calls[0]["headers"]["Host"] == f"hooks.test:{allowed.port}"
    with pytest.raises(Refused, match=f"hooks.test resolves to {B}, a loopback"):
        asyncio.run(out.post(f"http://hooks.test:{allowed.port}/hook", json={"x": 2}))
    assert forbidden.calls == [] and len(allowed.calls) == 1


def test_https_goes_to_the_pinned_address_with_the_hostname_as_tls_name(servers, tmp_path):
    seen: list[str | None] = []
    context, cert = _server_tls(tmp_path, "hooks.test", seen)
    server = servers(A, tls=context)
    resolver, _ = stub({"hooks.test": [[A]], "other.test": [[A]]})
    trust = ssl.create_default_context(cafile=str(cert))
    out = Outbound(allow=parse_allow(f"{A}/32"), resolver=resolver, verify=trust)
    reply = asyncio.run(out.post(f"https://hooks.test:{server.port}/x", json={}))
    assert reply.status == 200 and seen == ["hooks.test"]
    assert server.calls[0]["headers"]["Host"] == f"hooks.test:{server.port}"
    import httpx

    with pytest.raises(httpx.ConnectError, match="certificate"):  # verified against the name
        asyncio.run(out.post(f"https://other.test:{server.port}/x", json={}))
    assert len(server.calls) == 1


def test_a_redirect_is_never_followed(servers):
    inner = servers(B)
    outer = servers(A)
    outer.answer(302, b"", Location=f"http://{B}:{inner.port}/steal")
    out = Outbound(allow=parse_allow(f"{A}/32,{B}/32"))  # even where both are allowed
    reply = asyncio.run(out.post(f"http://{A}:{outer.port}/hook", json={}))
    assert reply.status == 302 and inner.calls == []


def test_smtp_connects_to_the_pinned_address_and_verifies_the_hostname(tmp_path):
    seen: list[str | None] = []
    context, cert = _server_tls(tmp_path, "mail.test", seen)

    class Box:
        async def handle_DATA(self, server, session, envelope):
            return "250 OK"

    with socket.socket() as probe:
        probe.bind((C, 0))
        port = int(probe.getsockname()[1])
    smtp = Controller(Box(), hostname=C, port=port, tls_context=context, require_starttls=True)
    smtp.start()
    try:
        resolver, asked = stub({"mail.test": [[C], ["169.254.169.254"]]})
        out = Outbound(allow=parse_allow(f"{C}/32"), resolver=resolver)
        trust = ssl.create_default_context(cafile=str(cert))
        with out.smtp("mail.test", port, implicit_tls=False, context=trust, timeout=5) as conn:
            conn.starttls(context=trust)
            assert conn.noop()[0] == 250
        assert seen == ["mail.test"] and asked == ["mail.test"]
        with pytest.raises(Refused, match="link-local"):  # the next lookup rebinds: refused
            out.smtp("mail.test", port, implicit_tls=False, context=trust, timeout=5)
    finally:
        smtp.stop()


# --- channels: saved and delivered through the services -----------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    w = build_world(tmp_path_factory.mktemp("outbound"))
    allow_outbound(w.db, ())  # this server allows no internal destination
    return w


def _deliver(world: World, allow: str, out: Outbound | None = None) -> None:
    settings = replace(world.settings, outbound_allow=parse_allow(allow))
    asyncio.run(dispatcher.deliver_due(world.db, settings, out))


def _save(world: World, name: str, kind: str, settings: dict[str, Any], **kw: Any) -> int:
    made = notifications.save_channel(world.db, SYSTEM, SPACE, name, kind, settings, **kw)
    return int(made["id"])


def _history(world: World, channel: int) -> list[dict[str, Any]]:
    newest = notifications.deliveries(world.db, SYSTEM, channel)[0]
    history: list[dict[str, Any]] = newest["history"]
    return history


def test_a_loopback_channel_is_refused_unless_a_superuser_allows_loopback(world, servers):
    server = servers(A)
    url = f"http://{A}:{server.port}/hook"
    for kind in ("webhook", "slack", "dingtalk", "wecom", "feishu"):
        with pytest.raises(ValidationError, match=f"url: {A}, a loopback address"):
            _save(world, f"lo-{kind}", kind, {"url": url})
    mail = {"host": A, "port": 2525, "from": "f@example.com", "to": ["x@example.com"]}
    with pytest.raises(ValidationError, match=f"host: {A}, a loopback address"):
        _save(world, "lo-mail", "email", mail)
    with pytest.raises(ValidationError, match=r"url: localhost resolves to .*loopback"):
        _save(world, "lo-name", "webhook", {"url": f"http://localhost:{server.port}/"})
    assert server.calls == []

    allow_outbound(world.db, parse_allow("127.0.0.0/8"))
    try:
        channel = _save(world, "lo-allowed", "webhook", {"url": url})
    finally:
        allow_outbound(world.db, ())
    delivery = notifications.test_channel(world.db, SYSTEM, channel)
    _deliver(world, "")  # the server's allow-list was emptied since: refused at delivery
    history = _history(world, channel)
    assert server.calls == [] and history[0]["ok"] is False
    assert f"{A}, a loopback address" in history[0]["error"]
    with world.db.transaction() as s:  # due again now
        from ferryman.db.models import NotifyDelivery, utcnow

        s.get(NotifyDelivery, delivery).next_attempt_at = utcnow()
    _deliver(world, "127.0.0.0/8")
    assert len(server.calls) == 1 and _history(world, channel)[-1]["ok"] is True
    notifications.delete_channel(world.db, SYSTEM, channel)


def test_a_name_that_does_not_resolve_yet_is_saved_and_checked_at_delivery(world, servers):
    server = servers(A)
    resolver, asked = stub({"later.test": [[], [A]]})
    out = Outbound(resolver=resolver)
    url = f"http://later.test:{server.port}/hook"
    channel = _save(world, "later", "webhook", {"url": url}, outbound=out)
    notifications.test_channel(world.db, SYSTEM, channel)
    asyncio.run(dispatcher.deliver_due(world.db, world.settings, out))
    assert asked == ["later.test", "later.test"] and server.calls == []
    assert f"later.test resolves to {A}, a loopback" in _history(world, channel)[0]["error"]
    notifications.delete_channel(world.db, SYSTEM, channel)


def test_a_name_rebound_after_saving_is_refused_at_delivery(world, servers):
    allowed = servers(A)
    forbidden = servers(B, allowed.port)
    resolver, asked = stub({"hooks.test": [[A], [B]]})
    out = Outbound(allow=parse_allow(f"{A}/32"), resolver=resolver)
    url = f"http://hooks.test:{allowed.port}/hook"
    channel = _save(world, "rebind", "slack", {"url": url}, outbound=out)
    notifications.test_channel(world.db, SYSTEM, channel)
    asyncio.run(dispatcher.deliver_due(world.db, world.settings, out))
    assert asked == ["hooks.test", "hooks.test"]
    assert allowed.calls == [] and forbidden.calls == []
    assert f"hooks.test resolves to {B}" in _history(world, channel)[0]["error"]
    notifications.delete_channel(world.db, SYSTEM, channel)


@pytest.mark.parametrize(
    ("status", "body", "kept"),
    [
        (500, ("<html>" + SECRET * 40_000 + "</html>").encode(), "HTTP 500"),
        (404, json.dumps({"message": SECRET, "data": SECRET * 1000}).encode(), "HTTP 404"),
        (
            200,
            json.dumps(
                {"errcode": 310000, "errmsg": "keywords not in content " + SECRET * 9}
            ).encode(),
            "errcode 310000: keywords not in content " + (SECRET * 9)[:76],
        ),
        (302, SECRET.encode(), "HTTP 302 (redirects are not followed)"),
    ],
)
def test_a_receivers_answer_is_kept_only_as_a_status_line(world, servers, status, body, kept):
    server = servers(A)
    server.answer(status, body, **({"Location": f"http://{B}/"} if status == 302 else {}))
    allow_outbound(world.db, parse_allow(f"{A}/32"))
    try:
        channel = _save(world, f"echo-{status}", "dingtalk", {"url": f"http://{A}:{server.port}/"})
    finally:
        allow_outbound(world.db, ())
    notifications.test_channel(world.db, SYSTEM, channel)
    _deliver(world, f"{A}/32")
    assert len(server.calls) == 1
    history = _history(world, channel)
    assert [h["error"] for h in history] == [kept]
    listed = json.dumps(notifications.deliveries(world.db, SYSTEM, channel))
    if status != 200:
        assert SECRET not in listed
    assert len(history[0]["error"]) <= len("errcode 310000: ") + 100
    notifications.delete_channel(world.db, SYSTEM, channel)


def test_answers_recorded_before_this_version_show_only_their_status(world):
    allow_outbound(world.db, parse_allow("127.0.0.0/8"))
    try:
        channel = _save(world, "old-rows", "slack", {"url": f"http://{A}:9/"})
    finally:
        allow_outbound(world.db, ())
    delivery = notifications.test_channel(world.db, SYSTEM, channel)
    from ferryman.db.models import NotifyDelivery

    with world.db.transaction() as s:
        row = s.get(NotifyDelivery, delivery)
        row.history = [{"at": "2026-01-01T00:00:00", "ok": False, "error": f"HTTP 500: {SECRET}"}]
    assert _history(world, channel) == [
        {"at": "2026-01-01T00:00:00", "ok": False, "error": "HTTP 500"}
    ]
    notifications.delete_channel(world.db, SYSTEM, channel)
