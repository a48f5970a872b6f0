"""SSH key pairs per space. The server's first pair (``ssh/id_ed25519``) stays the default
space's; every other space gets its own (``ssh/spaces/<id>/id_ed25519``), created on first
use, so a deploy only ever authenticates with its own space's key."""

from __future__ import annotations

import os
from pathlib import Path

import asyncssh

from ferryman.config.settings import Settings


def space_key_path(settings: Settings, space_id: int, uses_server_key: bool) -> Path:
    if uses_server_key:
        return settings.ssh_key
    return settings.home / "ssh" / "spaces" / str(space_id) / "id_ed25519"


def ensure_key(path: Path) -> Path:
    """Create an ed25519 pair at ``path`` (0600, in a 0700 dir) unless there; returns the
    public key's path."""
    public = path.with_suffix(".pub")
    if path.exists() and public.exists():
        return public
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    private = asyncssh.generate_private_key("ssh-ed25519", comment=f"ferryman-{path.parent.name}")
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private.export_private_key())
    private.write_public_key(str(public))
    os.replace(tmp, path)
    return public


def ensure_space_key(settings: Settings, space_id: int, uses_server_key: bool) -> Path:
    """The space's private key path, the pair created if missing."""
    path = space_key_path(settings, space_id, uses_server_key)
    if not uses_server_key:
        (settings.home / "ssh").mkdir(parents=True, exist_ok=True)
        os.chmod(settings.home / "ssh", 0o700)
        ensure_key(path)
    return path


def public_key(settings: Settings, space_id: int, uses_server_key: bool) -> str:
    return public_line(ensure_space_key(settings, space_id, uses_server_key))


def public_line(private: Path) -> str:
    """The ``authorized_keys`` line of a private key: its ``.pub`` file, or derived from the
    key when only the key was copied (a home restored from the key alone)."""
    from ferryman.errors import NotFound

    public = private.with_suffix(".pub")
    if public.exists():
        return public.read_text().strip()
    if not private.exists():
        raise NotFound(f"no SSH key at {private.name}: `ferryman serve` creates the server's")
    return asyncssh.read_private_key(str(private)).export_public_key().decode().strip()
