"""``ferryman admin …``: administration on the server machine, straight on its database (no
server needed). Each command says which home and database it acts on and refuses to create a
new home unless ``--create-home`` (``cli/home.py``)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from ferryman.cli.home import server_home
from ferryman.cli.output import console

admin_app = typer.Typer(
    help="Administration on the server machine (direct database access).", no_args_is_help=True
)
CreateHomeOpt = Annotated[
    bool,
    typer.Option(
        "--create-home", help="Create FERRYMAN_HOME and its database when they do not exist."
    ),
]


@admin_app.command("create-user")
def create_user(
    name: Annotated[str, typer.Argument(help="The new user's name.", metavar="NAME")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            help="The password (asked when not given).",
        ),
    ],
    superuser: Annotated[
        bool, typer.Option("--superuser", help="Make the user a superuser.")
    ] = False,
    create_home: CreateHomeOpt = False,
) -> None:
    """Create a user directly in the database (no server needed)."""
    from ferryman.bootstrap import prepare_home
    from ferryman.services import users

    db = prepare_home(server_home(create_home))
    users.create_user(db, name, password, superuser=superuser)
    console.print(f"created user {escape(name)}" + (" (superuser)" if superuser else ""))


@admin_app.command("add-member")
def add_member(
    space: Annotated[str, typer.Argument(help="Space name or id.", metavar="SPACE")],
    user: Annotated[str, typer.Argument(help="User name.", metavar="USER")],
    role: Annotated[
        str, typer.Option(help="owner, master, developer or reporter.", metavar="ROLE")
    ],
    create_home: CreateHomeOpt = False,
) -> None:
    """Make USER a member of SPACE with ROLE directly in the database (bootstrapping)."""
    from ferryman.bootstrap import prepare_home
    from ferryman.services import spaces
    from ferryman.services.audit import SYSTEM

    db = prepare_home(server_home(create_home))
    spaces.set_member(db, SYSTEM, space, user, role)
    console.print(f"{escape(user)} is {role} in {escape(space)}")


@admin_app.command("rotate-key")
def rotate_key() -> None:
    """Encrypt every secret with a new key.

    The old key stays readable until done, then the key file is replaced (the old one is kept
    as secret.key.old). With FERRYMAN_SECRET_KEY, prints the new key to put there instead."""
    import os

    from ferryman.bootstrap import prepare_home
    from ferryman.secretbox import KEY_ENV, SecretBox, key_file, load_key, new_key
    from ferryman.services.secrets import rotate_all

    settings = server_home(create=False)
    db = prepare_home(settings)  # checks the current key against the database
    old, fresh = load_key(settings.home), new_key()
    db.box = SecretBox(fresh, old)
    path = key_file(settings.home)
    staged = path.with_suffix(".key.new")
    if not os.environ.get(KEY_ENV):
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(fresh)
    count = rotate_all(db)
    if os.environ.get(KEY_ENV):
        console.print(f"re-encrypted {count} values; set {KEY_ENV} to:", highlight=False)
        console.print(fresh.decode(), highlight=False, soft_wrap=True)
        return
    if path.exists():
        os.replace(path, path.with_suffix(".key.old"))
    os.replace(staged, path)
    console.print(f"re-encrypted {count} values; new key in {path}")
