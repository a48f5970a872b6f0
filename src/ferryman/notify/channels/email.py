"""Email over SMTP: STARTTLS (``tls: starttls``), implicit TLS (``tls: ssl``) or none, optional
login; HTML and plain text. Recipients: the channel's ``to`` plus the people the event names
(the approvers of a ticket, its submitter) when ``to_people`` is on."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from typing import Any

from ferryman.errors import ValidationError
from ferryman.notify.channels.base import TIMEOUT, DeliveryFailed, short
from ferryman.notify.message import Message
from ferryman.outbound import Outbound, Refused, Unresolved
from ferryman.said import said

KIND = "email"
SECRET_KEYS = ("password",)


def _port(settings: dict[str, Any]) -> int:
    tls = settings.get("tls", "starttls")
    try:
        port = int(settings.get("port") or (465 if tls == "ssl" else 587))
    except (TypeError, ValueError):
        raise ValidationError(said("port: a number from 1 to 65535")) from None
    if not 0 < port < 65536:
        raise ValidationError(said("port: a number from 1 to 65535"))
    return port


def check(settings: dict[str, Any], out: Outbound) -> None:
    if not settings.get("host") or not isinstance(settings["host"], str):
        raise ValidationError(said("host: the SMTP server"))
    if settings.get("tls", "starttls") not in ("starttls", "ssl", "none"):
        raise ValidationError(said("tls: starttls, ssl or none"))
    if not settings.get("from"):
        raise ValidationError(said("from: the sender address"))
    try:
        out.destination(settings["host"], _port(settings), "host")
    except Unresolved:
        pass  # checked again, resolved, at each delivery


def _failure(exc: Exception) -> DeliveryFailed:
    """The kind of failure and the SMTP code; never the server's text (it may not be SMTP)."""
    if isinstance(exc, Refused):
        return DeliveryFailed(exc.message)
    if isinstance(exc, smtplib.SMTPResponseException):
        return DeliveryFailed(f"{type(exc).__name__}: {exc.smtp_code}")
    if isinstance(exc, OSError) and exc.strerror:
        return DeliveryFailed(f"{type(exc).__name__}: {short(exc.strerror)}")
    if isinstance(exc, ssl.SSLError):
        return DeliveryFailed(f"{type(exc).__name__}: {short(exc.reason or '')}")
    return DeliveryFailed(type(exc).__name__)


def _send(message: Message, settings: dict[str, Any], out: Outbound) -> None:
    to = list(
        dict.fromkeys(
            [
                *settings.get("to", []),
                *(message.recipients if settings.get("to_people", True) else []),
            ]
        )
    )
    if not to:
        return  # nobody to tell for this event
    mail = EmailMessage()
    mail["Subject"] = message.title
    mail["From"] = settings["from"]
    mail["To"] = ", ".join(to)
    mail.set_content(message.text + (f"\n\n{message.link}\n" if message.link else ""))
    mail.add_alternative(message.html, subtype="html")
    tls = settings.get("tls", "starttls")
    port = _port(settings)
    context = ssl.create_default_context()
    if settings.get("insecure"):  # self-signed test servers only
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        smtp = out.smtp(
            settings["host"], port, implicit_tls=tls == "ssl", context=context, timeout=TIMEOUT
        )
        with smtp:
            if tls == "starttls":
                smtp.starttls(context=context)
            if settings.get("user"):
                smtp.login(settings["user"], settings.get("password", ""))
            smtp.send_message(mail)
    except (OSError, smtplib.SMTPException, Refused) as exc:
        raise _failure(exc) from None


async def send(message: Message, settings: dict[str, Any], out: Outbound) -> None:
    await asyncio.to_thread(_send, message, settings, out)
