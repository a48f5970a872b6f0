"""Config files kept out of the repository: what one looks like, how the file for one host is
chosen (base, then label overrides, then the host's own), and how it is rendered.

Pure functions only: the service layer stores and seals them, the pipeline renders them per
host and ships them inside the release.

Rendering replaces ``${NAME}`` when NAME is a known variable (deploy variables, the
environment's variables and secrets); any other ``${...}`` is left as written and reported, so
shell or PHP syntax in a config file survives. ``$${NAME}`` writes a literal ``${NAME}``.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ferryman.domain import validate
from ferryman.errors import ValidationError

LIST_FILE = ".ferryman-config"  # in each release: the config paths it holds, NUL-separated
DEFAULT_MODE = 0o600
MAX_CONTENT = 512 * 1024
MAX_FILES = 100
_REFERENCE = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class Override:
    """A replacement for some hosts: whole ``content``, and/or ``set`` key values.

    ``scope`` is ``label:NAME`` (every server with that label) or ``host:NAME`` (one host, by
    server name or host key)."""

    scope: str
    content: str | None = None
    set: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"scope": self.scope, "content": self.content, "set": dict(self.set)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Override:
        return cls(scope=data["scope"], content=data.get("content"), set=dict(data.get("set", {})))


@dataclass(frozen=True)
class ConfigFile:
    path: str  # relative to the release root
    mode: int
    content: str
    overrides: tuple[Override, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "mode": self.mode,
            "content": self.content,
            "overrides": [o.to_dict() for o in self.overrides],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConfigFile:
        return cls(
            path=data["path"],
            mode=int(data["mode"]),
            content=data["content"],
            overrides=tuple(Override.from_dict(o) for o in data.get("overrides", [])),
        )


@dataclass(frozen=True)
class HostIdentity:
    """What override scopes can match on a host."""

    key: str  # the host key the deploy uses
    names: tuple[str, ...] = ()  # server names in the space that are this host
    labels: tuple[str, ...] = ()


# --- validation ------------------------------------------------------------------------------


def path(value: str) -> str:
    checked = validate.relative_path(value, "config path")
    if value.endswith("/") or len(value) > 500:
        raise ValidationError(f"invalid config path {value!r}: name a file")
    first = checked.split("/")[0]
    if first in (".git", LIST_FILE) or checked.startswith(".ferryman"):
        raise ValidationError(f"invalid config path {value!r}: reserved by Ferryman or git")
    return checked


def mode(value: str | int | None) -> int:
    """``0600``, ``600``, ``"0o640"`` or an int; owner must be able to read it."""
    if value is None or value == "":
        return DEFAULT_MODE
    if isinstance(value, int):
        number = value
    else:
        text = value.strip().lower().removeprefix("0o")
        if not re.fullmatch(r"[0-7]{3,4}", text):
            raise ValidationError(f"invalid mode {value!r}: give octal digits like 0600 or 0644")
        number = int(text, 8)
    if not 0 <= number <= 0o777:
        raise ValidationError(f"invalid mode {value!r}: permission bits only (at most 0777)")
    if not number & 0o400:
        raise ValidationError(f"invalid mode {oct(number)}: the owner must be able to read it")
    return number


def scope(value: str) -> str:
    kind, _, name = value.partition(":")
    if kind == "label":
        validate.label(name)
    elif kind == "host":
        validate.host(name)
    else:
        raise ValidationError(
            f"invalid override scope {value!r}: use label:NAME or host:NAME (server or address)"
        )
    return f"{kind}:{name}"


def content(value: str) -> str:
    if len(value.encode()) > MAX_CONTENT:
        raise ValidationError(f"config content: at most {MAX_CONTENT // 1024} KiB")
    if "\x00" in value:
        raise ValidationError("config content: NUL bytes are not allowed (text files only)")
    return value


def keys(values: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for key, value in values.items():
        if not _KEY.match(key):
            raise ValidationError(f"invalid key {key!r}: letters, digits, '_', '.', '-'")
        if "\n" in value or "\r" in value or "\x00" in value:
            raise ValidationError(f"{key}: a key value must be one line")
        out[key] = value
    return out


# --- choosing and rendering ------------------------------------------------------------------


def matches(override: Override, host: HostIdentity) -> bool:
    kind, _, name = override.scope.partition(":")
    if kind == "label":
        return name in host.labels
    return name in host.names or validate.host(name).key == host.key


def applicable(config: ConfigFile, host: HostIdentity) -> list[Override]:
    """The overrides for ``host`` in the order they apply: labels by name, then the host's."""
    labels = sorted(
        (o for o in config.overrides if o.scope.startswith("label:") and matches(o, host)),
        key=lambda o: o.scope,
    )
    own = [o for o in config.overrides if o.scope.startswith("host:") and matches(o, host)]
    return [*labels, *own]


def effective(config: ConfigFile, host: HostIdentity) -> tuple[str, list[str]]:
    """The template ``host`` gets, and the scopes that shaped it."""
    text = config.content
    chosen = applicable(config, host)
    for override in chosen:
        if override.content is not None:
            text = override.content
    for override in chosen:
        if override.set:
            text = set_keys(text, override.set)
    return text, [o.scope for o in chosen]


def set_keys(text: str, values: Mapping[str, str]) -> str:
    """Give ``KEY=value`` / ``KEY: value`` lines (dotenv, ini, properties, top-level YAML) new
    values; keys not found are appended as ``KEY=value``."""
    lines = text.splitlines(keepends=True)
    missing = dict(values)
    for index, line in enumerate(lines):
        for key in list(missing):
            found = re.match(
                r"^(\s*(?:export\s+)?" + re.escape(key) + r"\s*(?:=|:(?=\s|$))\s*)", line
            )
            if found:
                ending = "\n" if line.endswith("\n") else ""
                lines[index] = found.group(1) + missing.pop(key) + ending
                break
    if missing:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines += [f"{k}={v}\n" for k, v in missing.items()]
    return "".join(lines)


def render(template: str, variables: Mapping[str, str]) -> tuple[str, list[str]]:
    """``${NAME}`` → its value for known names; returns the text and the unknown names."""
    unknown: list[str] = []

    def one(found: re.Match[str]) -> str:
        escaped, name = found.group(1), found.group(2)
        if escaped:
            return "${" + name + "}"
        if name in variables:
            return variables[name]
        if name not in unknown:
            unknown.append(name)
        return found.group(0)

    return _REFERENCE.sub(one, template), unknown


def references(template: str) -> list[str]:
    """Every variable name the template refers to (not the escaped ones)."""
    return sorted({m.group(2) for m in _REFERENCE.finditer(template) if not m.group(1)})


# --- history ---------------------------------------------------------------------------------


def version_text(config: ConfigFile | None) -> list[str]:
    """A file's version as lines for a diff: mode, base content, then each override."""
    if config is None:
        return []
    lines = [f"# mode {config.mode:04o}\n", *_lines(config.content)]
    for override in config.overrides:
        lines.append(f"# override {override.scope}\n")
        if override.content is not None:
            lines += _lines(override.content)
        if override.set:
            lines += [f"# set {json.dumps(override.set, ensure_ascii=False, sort_keys=True)}\n"]
    return lines


def _lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return lines


def diff(old: ConfigFile | None, new: ConfigFile | None, old_label: str, new_label: str) -> str:
    return "".join(difflib.unified_diff(version_text(old), version_text(new), old_label, new_label))
