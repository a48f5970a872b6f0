"""Email over SMTP: STARTTLS (``tls: starttls``), implicit TLS (``tls: ssl``) or none, optional
login; HTML and plain text. Recipients: the channel's ``to`` plus the people the event names
(the approvers of a ticket, its submitter) when ``to_people`` is on."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from typing import Any

import httpx

from ferryman.errors import ValidationError
from ferryman.notify.channels.base import TIMEOUT, DeliveryFailed
from ferryman.notify.message import Message

KIND = "email"
SECRET_KEYS = ("password",)


def check(settings: dict[str, Any]) -> None:
    if not settings.get("host"):
        raise ValidationError("host: the SMTP server")
    if settings.get("tls", "starttls") not in ("starttls", "ssl", "none"):
        raise ValidationError("tls: starttls, ssl or none")
    if not settings.get("from"):
        raise ValidationError("from: the sender address")


def _send(message: Message, settings: dict[str, Any]) -> None:
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
    port = int(settings.get("port") or (465 if tls == "ssl" else 587))
    context = ssl.create_default_context()
    if settings.get("insecure"):  # self-signed test servers only
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        if tls == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                settings["host"], port, timeout=TIMEOUT, context=context
            )
        else:
            smtp = smtplib.SMTP(settings["host"], port, timeout=TIMEOUT)
        with smtp:
            if tls == "starttls":
                smtp.starttls(context=context)
            if settings.get("user"):
                smtp.login(settings["user"], settings.get("password", ""))
            smtp.send_message(mail)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None


async def send(message: Message, settings: dict[str, Any], http: httpx.AsyncClient) -> None:
    await asyncio.to_thread(_send, message, settings)
