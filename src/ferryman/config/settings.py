"""Server-side settings, read from the environment (``FERRYMAN_*``) with explicit defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs


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
    )
