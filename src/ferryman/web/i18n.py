"""Translations of the web UI: gettext catalogues (``locales/<lang>/LC_MESSAGES/*.po``) read
with Babel and compiled in memory when first used — no build step, no binary files.

English is the source language (the msgids); ``zh_CN`` is the catalogue. A user's language is
remembered in their account; before sign-in the ``ferryman_lang`` cookie or the browser's
``Accept-Language`` decides.
"""

from __future__ import annotations

import gettext
import io
from functools import cache
from pathlib import Path
from typing import Any

from babel.core import negotiate_locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from ferryman.said import Said

LOCALES = Path(__file__).parent / "locales"
SUPPORTED = ("en", "zh_CN")
DEFAULT = "en"
NAMES = {"en": "English", "zh_CN": "简体中文"}
COOKIE = "ferryman_lang"


@cache
def translations(lang: str) -> gettext.NullTranslations:
    if lang == DEFAULT or lang not in SUPPORTED:
        return gettext.NullTranslations()
    with (LOCALES / lang / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = read_po(fh, locale=lang)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def negotiate(accept_language: str) -> str:
    """The supported language the browser prefers most (``zh-CN,zh;q=0.9,en;q=0.8``)."""
    weighted = []
    for index, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag:
            weighted.append((-quality, index, tag.replace("-", "_")))
    preferred = [tag for _, _, tag in sorted(weighted)]
    found = negotiate_locale(preferred, SUPPORTED, sep="_")
    if found in SUPPORTED:
        return str(found)
    by_language = {code.split("_")[0]: code for code in SUPPORTED}
    for tag in preferred:  # ``zh``, ``zh_TW``: the same language, our one variant of it
        code = by_language.get(tag.split("_")[0].lower())
        if code is not None:
            return code
    return DEFAULT


def choose(user_language: str, cookie: str | None, accept_language: str) -> str:
    if user_language in SUPPORTED:
        return user_language
    if cookie in SUPPORTED:
        return str(cookie)
    return negotiate(accept_language)


def N_(text: str) -> str:
    """Marks a message for the catalogue that a template translates from a value."""
    return text


# How values are shown (``{{ value|label }}``): states, kinds, roles and audit actions.
LABELS = {
    "draft": N_("draft"),
    "pending_approval": N_("pending approval"),
    "approved": N_("approved"),
    "rejected": N_("rejected"),
    "queued": N_("queued"),
    "running": N_("running"),
    "succeeded": N_("succeeded"),
    "failed": N_("failed"),
    "cancelled": N_("cancelled"),
    "paused": N_("paused"),
    "success": N_("success"),
    "deploy": N_("deploy"),
    "rollback": N_("rollback"),
    "config": N_("config-only deploy"),
    "owner": N_("owner"),
    "master": N_("master"),
    "developer": N_("developer"),
    "reporter": N_("reporter"),
    "daily": N_("daily"),
    "weekly": N_("weekly"),
    # what a validation message names (``invalid %(what)s …``)
    "name": N_("name"),
    "path": N_("path"),
    "project name": N_("project name"),
    "space name": N_("space name"),
    "server name": N_("server name"),
    "group name": N_("group name"),
    "environment name": N_("environment name"),
    "channel name": N_("channel name"),
    "config path": N_("config path"),
    "ticket.create": N_("created the ticket"),
    "ticket.submit": N_("submitted it for approval"),
    "ticket.approve": N_("approved"),
    "ticket.reject": N_("rejected"),
    "ticket.deploy": N_("started the deploy"),
    "ticket.cancel": N_("cancelled the ticket"),
    "ticket.rollback": N_("rolled it back"),
    "deploy.success": N_("deploy succeeded"),
    "deploy.failed": N_("deploy failed"),
    "deploy.cancelled": N_("deploy cancelled"),
    "rollback.requested": N_("asked for a rollback"),
    "rollback.success": N_("rollback succeeded"),
    "rollback.failed": N_("rollback failed"),
    "rollback.cancelled": N_("rollback cancelled"),
    "config.success": N_("config-only deploy succeeded"),
    "config.failed": N_("config-only deploy failed"),
    "config.cancelled": N_("config-only deploy cancelled"),
    # notification events (``notify/message.EVENTS``) a channel takes
    "ticket.submitted": N_("ticket submitted for approval"),
    "ticket.approved": N_("ticket approved"),
    "ticket.rejected": N_("ticket rejected"),
    "deploy.started": N_("deploy started"),
    "rollout.paused": N_("gray release paused"),
    "deploy.succeeded": N_("deploy succeeded"),
    "rollback.succeeded": N_("rollback succeeded"),
    "rollback.forced": N_("rollback forced past a migration"),
    "lock.held_long": N_("environment locked for long"),
    "test": N_("test message"),
    "rollout.continue": N_("continued the rollout"),
    "rollout.abort": N_("aborted the rollout"),
    "rollout.rollback": N_("rolled the rollout back"),
}


def label(lang: str, value: str) -> str:
    """A state, kind, role or action as words in ``lang`` (unknown values as they are)."""
    return translations(lang).gettext(LABELS[value]) if value in LABELS else value


# the values of a ``said`` message that are states, kinds or roles: shown as their label
LABELLED = ("status", "kind", "role", "needs", "what")


def say(lang: str, text: Any) -> Any:
    """A ``said`` message in ``lang``: its template from the catalogue, filled with its values
    (states, kinds and roles as labels, nested messages said too). Anything else — and a
    message whose translation does not fit its values — is returned as it is."""
    if not isinstance(text, Said):
        return text
    values = {
        name: (
            say(lang, value)
            if isinstance(value, Said)
            else label(lang, str(value))
            if name in LABELLED
            else ", ".join(map(str, value))
            if isinstance(value, list | tuple)
            else value
        )
        for name, value in text.values.items()
    }
    try:
        return translations(lang).gettext(text.template) % values
    except (KeyError, ValueError, TypeError):
        return str(text)
