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

from babel.core import negotiate_locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

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


def N_(text: str) -> str:  # noqa: N802 - the gettext convention for "mark, translate later"
    """Marks a message for the catalogue that a template translates from a value."""
    return text


# Values shown through ``_(value)``: states, kinds, roles and audit actions.
DYNAMIC = (
    N_("draft"),
    N_("pending_approval"),
    N_("approved"),
    N_("rejected"),
    N_("queued"),
    N_("running"),
    N_("succeeded"),
    N_("failed"),
    N_("cancelled"),
    N_("success"),
    N_("deploy"),
    N_("rollback"),
    N_("config"),
    N_("owner"),
    N_("master"),
    N_("developer"),
    N_("reporter"),
    N_("ticket.create"),
    N_("ticket.submit"),
    N_("ticket.approve"),
    N_("ticket.reject"),
    N_("ticket.deploy"),
    N_("ticket.cancel"),
    N_("ticket.rollback"),
    N_("deploy.success"),
    N_("deploy.failed"),
    N_("deploy.cancelled"),
    N_("rollback.success"),
    N_("rollback.failed"),
    N_("rollback.cancelled"),
    N_("config.success"),
    N_("config.failed"),
    N_("config.cancelled"),
)
