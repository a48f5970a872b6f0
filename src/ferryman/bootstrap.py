"""First start: the home directory, the database schema, and the server's own SSH key pair."""

from __future__ import annotations

import os
from pathlib import Path

import asyncssh

from ferryman.config.settings import Settings
from ferryman.db.models import KeyValue
from ferryman.db.session import Database
from ferryman.errors import ConfigError
from ferryman.secretbox import CANARY, SecretBox, load_key


def ensure_ssh_key(settings: Settings) -> tuple[Path, bool]:
    """Create the server's ed25519 key pair once; returns (public key path, created)."""
    key = settings.ssh_key
    public = key.with_suffix(".pub")
    key.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(key.parent, 0o700)
    if not settings.known_hosts.exists():
        settings.known_hosts.touch(mode=0o600)
    if key.exists():
        return public, False
    private = asyncssh.generate_private_key("ssh-ed25519", comment="ferryman")
    private.write_private_key(str(key))
    os.chmod(key, 0o600)
    private.write_public_key(str(public))
    return public, True


def prepare_home(settings: Settings) -> Database:
    """Everything ``ferryman serve`` and the admin commands need before they start."""
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.workspaces.mkdir(exist_ok=True)
    settings.repo_cache.mkdir(exist_ok=True)
    db = Database(settings.database_url)
    db.upgrade()
    attach_key(db, SecretBox(load_key(settings.home)))
    from ferryman.services.deploy_records import mask_stored_host_errors

    mask_stored_host_errors(db)  # once: errors stored unmasked by older workers
    from ferryman.services.directory import Directory

    db.directory = Directory.load(settings.home / "ldap.yaml")
    return db


def attach_key(db: Database, box: SecretBox) -> None:
    """Give ``db`` the key for secret values, after checking it is the key this database was
    encrypted with (a canary sealed on first use): a wrong key is a clear error, not garbage."""
    with db.transaction() as s:
        canary = s.get(KeyValue, "key_check")
        if canary is None:
            s.add(KeyValue(key="key_check", value=box.seal(CANARY)))
        elif box.open(canary.value) != CANARY:
            raise ConfigError("the secret key does not match this database")
    db.box = box
