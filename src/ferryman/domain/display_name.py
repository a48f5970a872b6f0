"""Display names: a project's or a space's name as people write it, in any script
(``兼容-测试-1.0``, ``Boutique en ligne``), shown beside the ASCII slug that paths and URLs use.
At most 100 characters; no control characters, no line or paragraph separators, no
bidirectional overrides or marks (which would make a name read as another) and no invisible
formatting characters but the joiners some scripts and emoji need (a name of zero-width
spaces would show as nothing, and tag characters carry hidden text); surrounding spaces
dropped. Empty: the slug is shown."""

from __future__ import annotations

import unicodedata
from collections import Counter

from ferryman.errors import ValidationError
from ferryman.said import said

LIMIT = 100
# bidirectional embeddings, overrides and isolates: a name that reads as another
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
# the zero-width joiner and non-joiner: Persian, Indic scripts and emoji sequences need them
_JOINERS = frozenset("\u200c\u200d")


def check(value: str, what: str | None = "display_name") -> str:
    """``value`` stripped, or a ``ValidationError`` naming ``what`` (None: the caller names
    the field itself, as a project file's refusals are shown at their key)."""
    name = value.strip()
    if len(name) > LIMIT:
        if what is None:
            raise ValidationError(
                said("at most %(most)s characters (this one has %(n)s)", most=LIMIT, n=len(name))
            )
        raise ValidationError(
            said(
                "%(field)s: at most %(most)s characters (this one has %(n)s)",
                field=what,
                most=LIMIT,
                n=len(name),
            )
        )
    for char in name:
        category = unicodedata.category(char)
        if category == "Cf" and char not in _BIDI and char not in _JOINERS:
            found = f"U+{ord(char):04X}"
            if what is None:
                raise ValidationError(said("no invisible characters (found %(char)s)", char=found))
            raise ValidationError(
                said("%(field)s: no invisible characters (found %(char)s)", field=what, char=found)
            )
        if category in ("Cc", "Zl", "Zp") or char in _BIDI:
            found = f"U+{ord(char):04X}"
            if what is None:
                raise ValidationError(
                    said(
                        "no control characters, line breaks or direction overrides "
                        "(found %(char)s)",
                        char=found,
                    )
                )
            raise ValidationError(
                said(
                    "%(field)s: no control characters, line breaks or direction overrides "
                    "(found %(char)s)",
                    field=what,
                    char=found,
                )
            )
    if name and not name.translate(_NOTHING_SHOWN).strip():
        if what is None:
            raise ValidationError(said("a name must show something"))
        raise ValidationError(said("%(field)s: a name must show something", field=what))
    return name


_NOTHING_SHOWN = dict.fromkeys(map(ord, _JOINERS))


def labels(entries: list[tuple[str, str]]) -> dict[str, str]:
    """{slug: what a list of (slug, display name) shows for it}: the display name (or the
    slug), and the slug beside it — ``Acme (acme)`` — whenever two entries would read the
    same (letter case, compatibility forms and joiners aside), or one reads as another's slug:
    a space that names itself like another can never pass for it."""

    def key(text: str) -> str:
        return unicodedata.normalize("NFKC", text).translate(_NOTHING_SHOWN).casefold().strip()

    plain = {slug: shown(display, slug) for slug, display in entries}
    seen = Counter(key(text) for text in plain.values())
    slugs = {key(slug) for slug in plain}
    out: dict[str, str] = {}
    for slug, text in plain.items():
        # a slug shown as itself is never ambiguous: slugs are unique
        ambiguous = text != slug and (seen[key(text)] > 1 or key(text) in slugs - {key(slug)})
        out[slug] = f"{text} ({slug})" if ambiguous else text
    return out


def shown(display_name: str, slug: str) -> str:
    """What a page or a table shows for a project or space."""
    return display_name or slug
