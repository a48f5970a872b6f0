"""Validation of everything a user types that later reaches git, svn or a remote shell.

Each function returns the value (normalised) or raises ``ValidationError`` with a message that
names what was wrong. The rules are deliberately stricter than git's own: a ref that passes here
is safe as an argv element *and* inside a release name.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from ferryman.errors import ValidationError
from ferryman.said import said

_REF_CHARS = re.compile(r"^[A-Za-z0-9._/@+-]+$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def ref(value: str) -> str:
    """A branch, tag, commit id or svn path (``trunk``, ``tags/v1``, ``trunk@123``)."""
    if not value:
        raise ValidationError(said("ref is empty"))
    shown = repr(value)
    if _CONTROL.search(value):
        raise ValidationError(
            said("invalid ref %(ref)s: control characters are not allowed", ref=shown)
        )
    if value.startswith("-"):
        raise ValidationError(said("invalid ref %(ref)s: must not start with '-'", ref=shown))
    if not _REF_CHARS.match(value):
        raise ValidationError(
            said("invalid ref %(ref)s: only letters, digits and . _ / @ + - are allowed", ref=shown)
        )
    if ".." in value or "//" in value or "@{" in value:
        raise ValidationError(
            said("invalid ref %(ref)s: '..', '//' and '@{' are not allowed", ref=shown)
        )
    if value.startswith(("/", ".")) or value.endswith(("/", ".", ".lock")):
        raise ValidationError(said("invalid ref %(ref)s: bad start or end", ref=shown))
    if any(part.startswith(".") for part in value.split("/")):
        raise ValidationError(said("invalid ref %(ref)s: a component starts with '.'", ref=shown))
    if len(value) > 200:
        raise ValidationError(said("invalid ref %(ref)s: longer than 200 characters", ref=shown))
    return value


# the largest id a lookup asks for: the smallest integer column of the three databases (a
# bigger number reached SQLite as an OverflowError and PostgreSQL as "out of range": a 500)
MAX_ROW_ID = 2**31 - 1


def row_id(ref: int | str) -> int | None:
    """``ref`` as a row id when it is written as one (an int, or ASCII digits), else None (a
    name). A number no id column can hold is an id no row has: 0."""
    if isinstance(ref, int):
        value = ref
    elif is_digits(ref):
        value = int(ref)
    else:
        return None
    return value if 0 < value <= MAX_ROW_ID else 0


def is_digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` is also true for ``¹`` or ``٣``, which ``int``
    then refuses (a crash where a clear error was meant)."""
    return text.isascii() and text.isdigit()


def name(value: str, what: str = "name") -> str:
    """A project or environment name: letters, digits, ``._-``, starting with a letter or digit."""
    if not _NAME.match(value or ""):
        raise ValidationError(
            said(
                "invalid %(what)s %(value)s: use 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit",
                what=what,
                value=repr(value),
            )
        )
    return value


def absolute_path(value: str, what: str = "path") -> str:
    """An absolute remote path with no ``..`` component, no control characters, not ``/``."""
    if _CONTROL.search(value) or not value.startswith("/"):
        raise ValidationError(
            said(
                "invalid %(what)s %(value)s: must be an absolute path", what=what, value=repr(value)
            )
        )
    parts = [p for p in value.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise ValidationError(
            said(
                "invalid %(what)s %(value)s: no '.', '..' or bare '/'", what=what, value=repr(value)
            )
        )
    return "/" + "/".join(parts)


def relative_path(value: str, what: str = "path") -> str:
    """A path inside a release: relative, no ``..`` escape, no control characters."""
    if _CONTROL.search(value) or not value or value.startswith("/"):
        raise ValidationError(
            said(
                "invalid %(what)s %(value)s: must be a relative path", what=what, value=repr(value)
            )
        )
    parts = [p for p in value.split("/") if p and p != "."]
    if not parts or any(p == ".." for p in parts) or parts[0].startswith("-"):
        raise ValidationError(
            said(
                "invalid %(what)s %(value)s: no '..' and no leading '-'",
                what=what,
                value=repr(value),
            )
        )
    return "/".join(parts)


@dataclass(frozen=True)
class HostSpec:
    """One target host as written in the config: ``[user@]address[:port]``."""

    address: str
    port: int = 22
    user: str | None = None

    @property
    def key(self) -> str:
        """The stable identity of the host in the database and logs."""
        text = f"[{self.address}]" if ":" in self.address else self.address
        return text if self.port == 22 else f"{text}:{self.port}"

    def __str__(self) -> str:
        return (f"{self.user}@" if self.user else "") + self.key


def host(value: str) -> HostSpec:
    """Parse ``[user@]address[:port]`` (IPv6 in brackets) or raise a ``ValidationError``."""
    text = value.strip() if isinstance(value, str) else ""
    bad = ValidationError(said("not a host: %(value)s", value=repr(value)))
    if not text or text != value or _CONTROL.search(text) or " " in text or text.startswith("-"):
        raise bad
    user: str | None = None
    if "@" in text:
        user, text = text.rsplit("@", 1)
        if not _USER.match(user):
            raise bad
    port = 22
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise bad
        address, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise bad
            port = _port(rest[1:], bad)
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            raise bad from None
        return HostSpec(address=address, port=port, user=user)
    if text.count(":") == 1:
        text, port_text = text.split(":")
        port = _port(port_text, bad)
    elif ":" in text:
        raise bad
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        if not _HOSTNAME.match(text) or text.replace(".", "").isdigit():
            raise bad from None
    return HostSpec(address=text, port=port, user=user)


def _port(text: str, bad: ValidationError) -> int:
    if not is_digits(text) or not 0 < int(text) < 65536:
        raise bad
    return int(text)


def username(value: str) -> str:
    if not _USER.match(value or ""):
        raise ValidationError(said("invalid user name %(value)s", value=repr(value)))
    return value


_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}(=[A-Za-z0-9._-]{1,63})?$")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def label(value: str) -> str:
    """A server label: ``canary`` or ``key=value`` (``region=bj``)."""
    if not isinstance(value, str) or not _LABEL.match(value):
        raise ValidationError(
            said(
                "not a label: %(value)s (use name or key=value, letters/digits/._-)",
                value=repr(value),
            )
        )
    return value


def variables(values: dict[str, str], reserved: tuple[str, ...] = ()) -> dict[str, str]:
    """Environment variables for tasks: shell-safe names, values without NUL, none reserved."""
    for key, value in values.items():
        if not isinstance(key, str) or not _VARIABLE.match(key):
            raise ValidationError(said("variables/%(key)s: not a variable name", key=key))
        if key in reserved:
            raise ValidationError(
                said("variables/%(key)s: reserved, Ferryman sets it for every task", key=key)
            )
        if not isinstance(value, str) or "\x00" in value or len(value) > 4096:
            raise ValidationError(
                said("variables/%(key)s: a string without NUL, at most 4096 chars", key=key)
            )
    return values


def health_check_problem(http: str | None, tcp: str | None) -> str:
    """Checks from the deploy host may only reach the host being checked."""
    if http:
        try:
            host = urlsplit(http).netloc.rpartition("@")[2]
        except ValueError:
            return "http: not a URL"
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name != "{HOST}":
            return "http: the URL's host must be {HOST} (the host being checked)"
    if tcp:
        name = tcp.rsplit(":", 1)[0]
        if name != "{HOST}":
            return "tcp: give {HOST}:PORT (the host being checked)"
    return ""


def release(value: str, what: str = "release") -> str:
    """A release name as Ferryman makes them (``20240101-120000_v1_abc1234``, or what an
    environment's ``release_name`` template gives: one path-safe component): what a rollback
    may ask for, checked when it is requested rather than when a worker runs it."""
    from ferryman.domain.release import is_safe_name

    if not isinstance(value, str) or _CONTROL.search(value) or not is_safe_name(value):
        raise ValidationError(
            f"{what}: not a release name: {value!r} (like 20240101-120000_v1_abc1234)"
        )
    return value
