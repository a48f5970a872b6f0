"""Server-side settings, read from the environment (``FERRYMAN_*``) with explicit defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

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
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``8G``, ``512M``, ``1048576`` → bytes (binary units)."""
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = value[-1:] if value[-1:] in _UNITS else ""
    number = value[: len(value) - len(unit)] if unit else value
    try:
        size = int(float(number) * _UNITS[unit])
    except ValueError:
        raise ConfigError(f"not a size: {text!r} (e.g. 8G, 512M)") from None
    if size <= 0:
        raise ConfigError(f"not a size: {text!r} (e.g. 8G, 512M)")
    return size


def _sandbox_mode(text: str) -> str:
    mode = text.strip().lower() or "auto"
    if mode not in SANDBOX_MODES:
        raise ConfigError(f"FERRYMAN_SANDBOX must be auto or off, not {text!r}")
    return mode


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    home = Path(env.get("FERRYMAN_HOME") or platformdirs.user_data_dir("ferryman")).absolute()
    url = env.get("FERRYMAN_DATABASE_URL") or f"sqlite:///{home / 'ferryman.db'}"
    return Settings(
        home=home,
        database_url=url,
        worker_concurrency=int(env.get("FERRYMAN_WORKER_CONCURRENCY", "4")),
        worker_poll_seconds=float(env.get("FERRYMAN_WORKER_POLL", "0.5")),
        lock_lease_seconds=float(env.get("FERRYMAN_LOCK_LEASE", "60")),
        embedded_worker=env.get("FERRYMAN_EMBEDDED_WORKER", "1") not in ("0", "false", "no"),
        drain_grace_seconds=float(env.get("FERRYMAN_DRAIN_GRACE", "600")),
        public_url=env.get("FERRYMAN_PUBLIC_URL", "http://127.0.0.1:8080").rstrip("/"),
        notify_backoff_seconds=float(env.get("FERRYMAN_NOTIFY_BACKOFF", "5")),
        lock_warn_minutes=float(env.get("FERRYMAN_LOCK_WARN_MINUTES", "30")),
        sandbox=_sandbox_mode(env.get("FERRYMAN_SANDBOX", "auto")),
        bwrap=env.get("FERRYMAN_BWRAP", "/usr/bin/bwrap"),
        sandbox_uid_base=int(env.get("FERRYMAN_SANDBOX_UID_BASE", "1900000000")),
        sandbox_uid_count=int(env.get("FERRYMAN_SANDBOX_UID_COUNT", "1000000")),
        sandbox_cpu_seconds=int(env.get("FERRYMAN_SANDBOX_CPU", "3600")),
        sandbox_memory=parse_size(env.get("FERRYMAN_SANDBOX_MEMORY", "8G")),
        sandbox_processes=int(env.get("FERRYMAN_SANDBOX_PROCESSES", "512")),
        sandbox_stage=Path(env.get("FERRYMAN_SANDBOX_STAGE", "/run/ferryman-sandbox")),
        outbound_allow=parse_allow(env.get("FERRYMAN_OUTBOUND_ALLOW", "")),
    )
