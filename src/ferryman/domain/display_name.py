"""Display names: a project's or a space's name as people write it, in any script
(``兼容-测试-1.0``, ``Boutique en ligne``), shown beside the ASCII slug that paths and URLs use.
At most 100 characters; no control characters, no line or paragraph separators and no
bidirectional overrides (which would make a name read as another); surrounding spaces
dropped. Empty: the slug is shown."""

from __future__ import annotations

import unicodedata

from ferryman.errors import ValidationError
from ferryman.said import said

LIMIT = 100
# bidirectional embeddings, overrides and isolates: a name that reads as another
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


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
        if unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in _BIDI:
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
    return name


def shown(display_name: str, slug: str) -> str:
    """What a page or a table shows for a project or space."""
    return display_name or slug
