"""Which home and database the server-side commands (``admin …``, ``ssh-key``) act on.

They work on ``FERRYMAN_HOME`` directly. Run beside a server without its ``FERRYMAN_HOME``,
they used to make a second home silently — a second database, a second key — and a later
sign-in failed with only "wrong user name or password". Now each says on stderr which home
and database it acts on, and one that finds no Ferryman home there refuses unless asked
(``--create-home``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ferryman.cli.output import err
from ferryman.errors import ConfigError

if TYPE_CHECKING:  # the settings import httpx and cryptography: only when a command runs
    from ferryman.config.settings import Settings


def is_home(settings: Settings) -> bool:
    """Whether a Ferryman home is there: its SQLite database, its secret key or its SSH key."""
    from ferryman.secretbox import key_file

    home = settings.home
    marks: list[Path] = [home / "ferryman.db", key_file(home), settings.ssh_key]
    return home.is_dir() and any(mark.exists() for mark in marks)


def server_home(create: bool) -> Settings:
    """The settings of the home to act on, said on stderr; a missing home is refused unless
    ``create``."""
    from ferryman.cli.server import redact
    from ferryman.config.settings import load_settings

    settings = load_settings()
    found = is_home(settings)
    if not found and not create:
        raise ConfigError(
            f"no Ferryman home at {settings.home} (FERRYMAN_HOME): run this on the server "
            "with the server's FERRYMAN_HOME (and FERRYMAN_DATABASE_URL), or add "
            "--create-home to start a new home there"
        )
    err.print(
        f"{'home' if found else 'creating home'} {settings.home}, "
        f"database {redact(settings.database_url)}",
        highlight=False,
    )
    return settings
