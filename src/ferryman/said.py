"""Messages a person reads, in the language they read.

The services speak English: an error's message is what the API returns, the CLI prints and
the log keeps. A message made with ``said`` is that English text and also remembers its
template and values, so the web UI can say it from its catalogue in the viewer's language
(``web.session.Web.say``) — with the same values, never by matching the English text.

``said`` is a gettext keyword: tests/web/test_catalogue.py extracts every template written
with it anywhere in the package and requires the Chinese catalogue to cover it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class Said(str):
    """English text (``template % values``) that can be said again in another language."""

    template: str
    values: Mapping[str, Any]

    def __new__(cls, template: str, values: Mapping[str, Any]) -> Said:
        shown = {k: _english(v) for k, v in values.items()}
        made = super().__new__(cls, template % shown if values else template)
        made.template = template
        made.values = dict(values)
        return made

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (process pools, caches) keep it whole
        return (Said, (self.template, dict(self.values)))


def _english(value: Any) -> Any:
    """A list of values reads ``a, b, c``."""
    return ", ".join(map(str, value)) if isinstance(value, list | tuple) else value


def said(template: str, **values: Any) -> Said:
    """``template`` (``%(name)s`` placeholders) filled with ``values``."""
    return Said(template, values)
