"""Server-side settings, read from the environment (``FERRYMAN_*``) with explicit defaults.

``VARIABLES`` is the one list of every environment variable Ferryman reads, with its default
and how its value is checked; ``docs/config.md`` has a table of the same variables and a test
holds the two together. Every value is checked when the settings are loaded: a bad one stops
the server with an error that names the variable and says what it wants. Yes/no values take
``1``/``0``, ``true``/``false``, ``yes``/``no`` and ``on``/``off``. An empty value is the
same as an unset one (the default)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import platformdirs

from ferryman.config.retention import parse_retention
from ferryman.errors import ConfigError
from ferryman.outbound import Network, parse_allow


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    worker_concurrency: int = 4
    worker_poll_seconds: float = 0.5
    lock_lease_seconds: float = 60.0
    embedded_worker: bool = True
    drain_grace_seconds: float = 600.0
    public_url: str = "http://127.0.0.1:8080"  # links in notifications
    notify_backoff_seconds: float = 5.0  # first retry of a failed notification; doubles
    lock_warn_minutes: float = 30.0  # a deploy running longer is announced (lock.held_long)
    # The build sandbox (docs/security.md): ``auto`` requires it, ``off`` runs hooks unconfined.
    sandbox: str = "auto"
    bwrap: str = "/usr/bin/bwrap"
    sandbox_uid_base: int = 1_900_000_000  # deploy N runs as uid base + N % sandbox_uid_count
    sandbox_uid_count: int = 1_000_000
    sandbox_cpu_seconds: int = 3600
    sandbox_memory: int = 8 << 30  # bytes of data (heap and anonymous memory) per process
    sandbox_processes: int = 512  # processes and threads of one sandbox (its own uid)
    sandbox_stage: Path = Path("/run/ferryman-sandbox")  # empty mount points, root only
    # Internal networks user-aimed requests (notification URLs, SMTP) may reach anyway.
    outbound_allow: tuple[Network, ...] = ()
    # Who may approve a ticket they created themselves, with a written reason: nobody
    # ("off"), or a space's owners and superusers ("owners": a team of one).
    self_approval: str = "off"
    metrics_token: str = ""  # /metrics answers only with it (Bearer); empty: /metrics is off
    # How long the log lines and command records of an ended deploy are kept (``180d``);
    # None keeps them for ever. The pruning job (``services/retention.py``) never touches a
    # running deploy's, the newest per project environment's, or what a host runs now.
    log_retention: timedelta | None = None

    @property
    def ssh_key(self) -> Path:
        """The server's own SSH private key (its public key is ``ssh_key.pub``)."""
        return self.home / "ssh" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        """The server's own known_hosts file: host keys are verified, never blind-accepted."""
        return self.home / "ssh" / "known_hosts"

    @property
    def workspaces(self) -> Path:
        return self.home / "workspaces"

    @property
    def repo_cache(self) -> Path:
        return self.home / "repos"

    @property
    def kept_builds(self) -> Path:
        """Built trees of failed deploys, kept so a retry ships them without rebuilding."""
        return self.home / "builds"

    def space_ssh_dir(self, space_id: int) -> Path:
        """Per-space SSH files the server writes (the pinned repository host keys)."""
        return self.home / "ssh" / "spaces" / str(space_id)


SANDBOX_MODES = ("auto", "off")
SELF_APPROVAL_MODES = ("off", "owners")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def parse_size(text: str) -> int:
    """``8G``, ``512M``, ``1048576`` → bytes (binary units)."""
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = value[-1:] if value[-1:] in _UNITS else ""
    number = value[: len(value) - len(unit)] if unit else value
    try:
        size = int(float(number) * _UNITS[unit])
    except (ValueError, OverflowError):
        raise ConfigError(f"not a size: {text!r} (e.g. 8G, 512M)") from None
    if size <= 0:
        raise ConfigError(f"not a size: {text!r} (e.g. 8G, 512M)")
    return size


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("must be yes or no (1/0, true/false, yes/no, on/off)")


def _whole(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            number = int(text.strip())
        except ValueError:
            raise ValueError(f"must be a whole number of at least {minimum}") from None
        if number < minimum:
            raise ValueError(f"must be a whole number of at least {minimum}")
        return number

    return parse


def _seconds(text: str) -> float:
    try:
        number = float(text.strip())
    except ValueError:
        raise ValueError("must be a number greater than 0 (e.g. 0.5, 60)") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError("must be a number greater than 0 (e.g. 0.5, 60)")
    return number


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ValueError(f"must be {' or '.join(choices)}")
        return value

    return parse


def _url(text: str) -> str:
    value = text.strip().rstrip("/")
    if not value.startswith(("http://", "https://")) or any(c.isspace() for c in value):
        raise ValueError("must be an http:// or https:// URL (e.g. https://ferryman.example.com)")
    return value


def _database_url(text: str) -> str:
    value = text.strip()
    if not value.startswith(("sqlite:", "postgresql", "mysql", "mariadb")):
        raise ValueError("must be a sqlite:///, postgresql+psycopg:// or mysql+pymysql:// URL")
    return value


def _path(text: str) -> Path:
    if not text.strip().startswith("/"):
        raise ValueError("must be an absolute path")
    return Path(text.strip())


def _token(text: str) -> str:
    value = text.strip()
    if value and (len(value) < 16 or any(c.isspace() or not c.isprintable() for c in value)):
        raise ValueError("must be at least 16 printable characters, no spaces")
    return value


def _home(text: str) -> Path:
    return Path(text.strip()).absolute()


def _text(text: str) -> str:
    return text


def _networks(text: str) -> tuple[Network, ...]:
    try:
        return parse_allow(text)
    except ConfigError as exc:
        raise ValueError(str(exc).split(": ", 1)[-1]) from None


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


@dataclass(frozen=True)
class Variable:
    """One environment variable: ``field`` is the ``Settings`` field it sets (None: read
    elsewhere, e.g. by the CLI); ``default`` is what an unset variable means, as text."""

    name: str
    field: str | None
    default: str
    parse: Callable[[str], Any] = _text
    secret: bool = False  # never repeated in an error (a password in a URL, a key)


VARIABLES: tuple[Variable, ...] = (
    Variable("FERRYMAN_HOME", "home", "", _home),  # default: platformdirs' user data dir
    Variable(
        "FERRYMAN_DATABASE_URL", "database_url", "", _database_url, secret=True
    ),  # default: SQLite
    Variable("FERRYMAN_SECRET_KEY", None, "", secret=True),  # secretbox.load_key
    Variable("FERRYMAN_WORKER_CONCURRENCY", "worker_concurrency", "4", _whole(1)),
    Variable("FERRYMAN_WORKER_POLL", "worker_poll_seconds", "0.5", _seconds),
    Variable("FERRYMAN_LOCK_LEASE", "lock_lease_seconds", "60", _seconds),
    Variable("FERRYMAN_EMBEDDED_WORKER", "embedded_worker", "1", parse_bool),
    Variable("FERRYMAN_DRAIN_GRACE", "drain_grace_seconds", "600", _seconds),
    Variable("FERRYMAN_PUBLIC_URL", "public_url", "http://127.0.0.1:8080", _url),
    Variable("FERRYMAN_NOTIFY_BACKOFF", "notify_backoff_seconds", "5", _seconds),
    Variable("FERRYMAN_LOCK_WARN_MINUTES", "lock_warn_minutes", "30", _seconds),
    Variable("FERRYMAN_SANDBOX", "sandbox", "auto", _choice(*SANDBOX_MODES)),
    Variable("FERRYMAN_BWRAP", "bwrap", "/usr/bin/bwrap", _text),
    Variable("FERRYMAN_SANDBOX_CPU", "sandbox_cpu_seconds", "3600", _whole(1)),
    Variable("FERRYMAN_SANDBOX_MEMORY", "sandbox_memory", "8G", _size),
    Variable("FERRYMAN_SANDBOX_PROCESSES", "sandbox_processes", "512", _whole(1)),
    Variable("FERRYMAN_SANDBOX_UID_BASE", "sandbox_uid_base", "1900000000", _whole(1000)),
    Variable("FERRYMAN_SANDBOX_UID_COUNT", "sandbox_uid_count", "1000000", _whole(1)),
    Variable("FERRYMAN_SANDBOX_STAGE", "sandbox_stage", "/run/ferryman-sandbox", _path),
    Variable("FERRYMAN_OUTBOUND_ALLOW", "outbound_allow", "", _networks),
    Variable("FERRYMAN_SELF_APPROVAL", "self_approval", "off", _choice(*SELF_APPROVAL_MODES)),
    Variable("FERRYMAN_METRICS_TOKEN", "metrics_token", "", _token, secret=True),
    Variable("FERRYMAN_LOG_RETENTION", "log_retention", "off", parse_retention),
    # options of `ferryman serve`/`worker` that can come from the environment (a unit's file),
    # checked by those commands
    Variable("FERRYMAN_FORWARDED_ALLOW_IPS", None, ""),
    Variable("FERRYMAN_ROOT_PATH", None, ""),
    Variable("FERRYMAN_LOG_LEVEL", None, "info"),
    Variable("FERRYMAN_LOG_FORMAT", None, "text"),
    # the CLI's server and token (user commands)
    Variable("FERRYMAN_URL", None, ""),
    Variable("FERRYMAN_TOKEN", None, "", secret=True),
)
BY_NAME = {v.name: v for v in VARIABLES}


def value_of(env: Mapping[str, str], name: str) -> Any:
    """The checked value of one variable (its default when unset or empty)."""
    variable = BY_NAME[name]
    raw = env.get(name, "")
    text = raw if raw.strip() else variable.default
    try:
        return variable.parse(text)
    except ValueError as exc:
        shown = name if variable.secret else f"{name}={raw!r}"
        raise ConfigError(f"{shown}: {exc}") from None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    source = os.environ if env is None else env
    values: dict[str, Any] = {}
    for variable in VARIABLES:
        if variable.field is None or variable.field in ("home", "database_url"):
            continue
        values[variable.field] = value_of(source, variable.name)
    home_text = source.get("FERRYMAN_HOME", "").strip()
    home = (
        value_of(source, "FERRYMAN_HOME")
        if home_text
        else Path(platformdirs.user_data_dir("ferryman"))
    ).absolute()
    url = (
        value_of(source, "FERRYMAN_DATABASE_URL")
        if source.get("FERRYMAN_DATABASE_URL", "").strip()
        else f"sqlite:///{home / 'ferryman.db'}"
    )
    return Settings(home=home, database_url=url, **values)
