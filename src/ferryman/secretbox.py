"""Encryption at rest for secret values (Fernet: AES-128-CBC + HMAC-SHA256, from
``cryptography``). The key lives outside the database: ``FERRYMAN_SECRET_KEY``, or the key file
``$FERRYMAN_HOME/secret.key`` created on first start with mode 600.

Every encrypted value is stored as ``enc:<token>``. The database holds a canary encrypted with
the key; a server started with another key stops with a clear error instead of producing
garbage. ``rotate`` re-encrypts with a new key (old tokens stay readable during the rotation).
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ferryman.errors import ConfigError

PREFIX = "enc:"
KEY_ENV = "FERRYMAN_SECRET_KEY"
CANARY = "ferryman-key-check"


class SecretBox:
    def __init__(self, *keys: bytes) -> None:
        if not keys:
            raise ConfigError("no secret key")
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
        except ValueError:
            raise ConfigError(
                f"{KEY_ENV} (or the key file) is not a valid key: 32 url-safe base64 bytes, "
                "as made by `ferryman admin rotate-key`"
            ) from None

    def seal(self, plain: str) -> str:
        return PREFIX + self._fernet.encrypt(plain.encode()).decode()

    def open(self, sealed: str) -> str:
        if not is_sealed(sealed):
            raise ConfigError("not an encrypted value")
        try:
            return self._fernet.decrypt(sealed[len(PREFIX) :].encode()).decode()
        except InvalidToken:
            raise ConfigError(
                "a secret cannot be decrypted with this server's key: start it with the key "
                f"the database was encrypted with ({KEY_ENV} or the key file)"
            ) from None

    def rotate(self, sealed: str) -> str:
        """The same value encrypted with the first (newest) key."""
        return PREFIX + self._fernet.rotate(sealed[len(PREFIX) :].encode()).decode()


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


def new_key() -> bytes:
    return Fernet.generate_key()


def key_file(home: Path) -> Path:
    return home / "secret.key"


def load_key(home: Path, create: bool = True) -> bytes:
    """The key from ``FERRYMAN_SECRET_KEY``, else the key file (made once, mode 600)."""
    from_env = os.environ.get(KEY_ENV, "").strip()
    if from_env:
        return from_env.encode()
    path = key_file(home)
    if path.exists():
        return path.read_bytes().strip()
    if not create:
        raise ConfigError(f"no secret key: set {KEY_ENV} or restore {path}")
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(new_key())
    return path.read_bytes().strip()
