"""Outbound requests a user can aim (notification URLs, SMTP servers): where they may go.

A destination is resolved once, every address it resolves to is checked, and the request then
connects to exactly the first checked address (the hostname still travels as the HTTP ``Host``
header and as the TLS server name, so certificates are verified against it). A DNS answer that
changes between the check and the connection (rebinding) therefore cannot move the request.

Refused unless a superuser allows them with ``FERRYMAN_OUTBOUND_ALLOW`` (CIDRs): loopback,
link-local (the cloud metadata address 169.254.169.254 among them), private, shared (CGNAT),
unspecified, multicast and reserved addresses, and the IPv6 forms that embed one of them
(IPv4-mapped, IPv4-compatible, 6to4, Teredo, NAT64). Redirects are never followed, and a
response is read only up to ``MAX_BODY`` bytes; callers keep no more of it than a status line.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import smtplib
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from ferryman.errors import ConfigError, ValidationError
from ferryman.said import said

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]
"""``(host, port) -> addresses`` as text; the system's is ``getaddrinfo``."""

ALLOW_SETTING = "FERRYMAN_OUTBOUND_ALLOW"
MAX_BODY = 64 * 1024
_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network
_SHARED = _V4("100.64.0.0/10")
_NAT64 = (_V6("64:ff9b::/96"), _V6("64:ff9b:1::/48"))
_PRIVATE = (
    _V4("10.0.0.0/8"),
    _V4("172.16.0.0/12"),
    _V4("192.168.0.0/16"),
    _V6("fc00::/7"),
)


class Refused(ValidationError):
    """A destination resolves to an address that outbound requests may not reach."""


class Unresolved(Refused):
    """A destination's name does not resolve (now): nothing can be reached, nothing checked."""


def parse_allow(text: str) -> tuple[Network, ...]:
    """``FERRYMAN_OUTBOUND_ALLOW``: comma-separated CIDRs (or single addresses)."""
    networks = []
    for part in text.replace(" ", ",").split(","):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigError(
                said(
                    "%(setting)s: %(value)s is not a network (e.g. 10.1.2.0/24)",
                    setting=ALLOW_SETTING,
                    value=repr(part),
                )
            ) from None
    return tuple(networks)


def _embedded(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for, if it stands for one."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if int(ip) >> 32 == 0 and int(ip) > 1:  # IPv4-compatible ::a.b.c.d (deprecated)
        return ipaddress.IPv4Address(int(ip))
    return None


def refusal(ip: Address) -> str | None:
    """Why ``ip`` is internal (``"loopback"``, ``"link-local"``…), or None for a public one.
    The kind is ``said``: a refusal names it in the reader's language."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%")[0])
        inner = _embedded(ip)
        why = refusal(inner) if inner is not None else None
        if why:
            return said("%(why)s (%(inner)s inside %(ip)s)", why=why, inner=inner, ip=ip)
    if ip.is_unspecified:
        return said("unspecified")
    if ip.is_loopback:
        return said("loopback")
    if ip.is_link_local:
        return said("link-local")
    if ip.is_multicast:
        return said("multicast")
    if any(ip in net for net in _PRIVATE if net.version == ip.version):
        return said("private")
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return said("shared (CGNAT)")
    if ip.is_reserved or ip.is_private or not ip.is_global:
        return said("reserved")
    return None


def _unresolved(what: str, name: str) -> str:
    return said("%(field)s: cannot resolve %(name)s", field=what, name=name)


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class Destination:
    """Where a request goes: ``host`` as the user wrote it, ``ip`` the address it is pinned to."""

    host: str
    ip: Address
    port: int


@dataclass(frozen=True)
class Reply:
    """What is kept of an HTTP answer: the status and at most ``MAX_BODY`` bytes."""

    status: int
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body)


@dataclass(frozen=True)
class Outbound:
    """The policy for user-aimed requests: the superuser's allow-list and a resolver."""

    allow: tuple[Network, ...] = ()
    resolver: Resolver = field(default=system_resolver)
    verify: ssl.SSLContext | None = None  # HTTPS trust; None: the system's CAs (certifi)

    def allowed(self, ip: Address) -> bool:
        return any(ip.version == net.version and ip in net for net in self.allow)

    def destination(self, host: str, port: int, what: str) -> Destination:
        """Resolve ``host`` once and check every address; raises :class:`Refused` naming
        ``what`` (the field) and the address. Returns the first address, to connect to."""
        name = host.strip().strip("[]")
        if not name:
            raise Refused(said("%(field)s: no host", field=what))
        try:
            addresses = [ipaddress.ip_address(name)]
        except ValueError:
            try:
                addresses = [ipaddress.ip_address(a) for a in self.resolver(name, port)]
            except (OSError, UnicodeError, ValueError):
                raise Unresolved(_unresolved(what, name), host=name) from None
        if not addresses:
            raise Unresolved(_unresolved(what, name), host=name)
        for ip in addresses:
            why = refusal(ip)
            if why and not self.allowed(ip):
                shown = (
                    name
                    if str(ip) == name
                    else said("%(name)s resolves to %(ip)s", name=name, ip=str(ip))
                )
                raise Refused(
                    said(
                        "%(field)s: %(shown)s, a %(why)s address; internal destinations are "
                        "refused unless a superuser allows them (%(setting)s)",
                        field=what,
                        shown=shown,
                        why=why,
                        setting=ALLOW_SETTING,
                    ),
                    host=name,
                    address=str(ip),
                )
        return Destination(name, addresses[0], port)

    def check_url(self, url: str, what: str = "url") -> Destination:
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            raise ValidationError(said("%(field)s: not a URL", field=what)) from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValidationError(said("%(field)s: an http(s) URL", field=what))
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        return self.destination(parsed.host, port, what)

    async def post(
        self,
        url: str,
        *,
        what: str = "url",
        timeout: float = 10.0,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> Reply:
        """POST to ``url`` through its pinned address; never follows a redirect."""
        target = await asyncio.to_thread(self.check_url, url, what)
        parsed = httpx.URL(url)
        pinned = parsed.copy_with(host=str(target.ip))
        sent = dict(headers or {})
        sent["Host"] = parsed.netloc.decode("ascii").rpartition("@")[2]
        extensions = {}
        if parsed.scheme == "https":
            extensions["sni_hostname"] = target.host.rstrip(".")
        async with httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            timeout=timeout,
            verify=self.verify if self.verify is not None else True,
        ) as client:
            request = client.build_request(
                "POST", pinned, headers=sent, extensions=extensions, **kw
            )
            response = await client.send(request, stream=True)
            try:
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) >= MAX_BODY:
                        break
            finally:
                await response.aclose()
        return Reply(response.status_code, body[:MAX_BODY])

    def smtp(
        self, host: str, port: int, *, implicit_tls: bool, context: ssl.SSLContext, timeout: float
    ) -> smtplib.SMTP:
        """An SMTP connection to ``host``'s pinned address; TLS (implicit or STARTTLS) checks
        the certificate against ``host``."""
        target = self.destination(host, port, "host")
        kind = _PinnedSMTPSSL if implicit_tls else _PinnedSMTP
        smtp = kind(str(target.ip), target.host, context, timeout)
        try:
            code, text = smtp.connect(target.host, port)
            if code != 220:
                raise smtplib.SMTPConnectError(code, text)
        except BaseException:
            smtp.close()
            raise
        return smtp


class _PinnedSMTP(smtplib.SMTP):
    """Connects to ``ip`` whatever host ``connect`` names; ``host`` is the TLS server name
    (smtplib's STARTTLS uses ``_host``, which only its constructor sets)."""

    def __init__(self, ip: str, host: str, context: ssl.SSLContext, timeout: float) -> None:
        self._pinned_ip = ip
        self._context = context
        super().__init__(timeout=timeout)
        self._host = host

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return socket.create_connection((self._pinned_ip, port), timeout)


class _PinnedSMTPSSL(_PinnedSMTP):
    default_port = smtplib.SMTP_SSL_PORT

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        raw = socket.create_connection((self._pinned_ip, port), timeout)
        return self._context.wrap_socket(raw, server_hostname=host)


def allow_from_env(env: dict[str, str] | None = None) -> tuple[Network, ...]:
    return parse_allow((os.environ if env is None else env).get(ALLOW_SETTING, ""))


def for_database(db: object) -> Outbound:
    """The policy of the server ``db`` belongs to: ``db.outbound_allow`` where the server set
    it from its settings, else ``FERRYMAN_OUTBOUND_ALLOW`` from the environment."""
    allow = getattr(db, "outbound_allow", None)
    return Outbound(allow=tuple(allow) if allow is not None else allow_from_env())
