"""Running Ferryman in production: ``serve`` (behind a reverse proxy too), ``worker``,
``backup`` and ``restore``. They work on the local home and database directly.

Both long-running commands log with UTC timestamps, as text or JSON (``--log-format``,
``FERRYMAN_LOG_FORMAT``); the deploy lifecycle is logged as events with the deploy id
(``observability/logs.py``)."""

from __future__ import annotations

import ipaddress
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from ferryman import __version__
from ferryman.cli.output import console, err
from ferryman.cli.server import redact
from ferryman.errors import ConfigError

LogLevel = Annotated[
    str,
    typer.Option(
        "--log-level",
        envvar="FERRYMAN_LOG_LEVEL",
        help="critical, error, warning, info or debug.",
        metavar="LEVEL",
    ),
]
LogFormat = Annotated[
    str,
    typer.Option(
        "--log-format",
        envvar="FERRYMAN_LOG_FORMAT",
        help="text (timestamped lines) or json (one object a line).",
        metavar="FORMAT",
    ),
]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``ferryman`` application."""
    app.command()(serve)
    app.command("worker")(worker_command)
    app.command()(backup)
    app.command()(restore)


def check_logging(level: str, fmt: str) -> tuple[str, str]:
    from ferryman.observability import logs

    level, fmt = level.strip().lower(), fmt.strip().lower()
    if level not in logs.LEVELS:
        raise ConfigError(
            f"--log-level (FERRYMAN_LOG_LEVEL): {level!r} is not one of {', '.join(logs.LEVELS)}"
        )
    if fmt not in logs.FORMATS:
        raise ConfigError(f"--log-format (FERRYMAN_LOG_FORMAT): {fmt!r} is not text or json")
    return level, fmt


def trusted_proxies(text: str) -> list[str]:
    """``--forwarded-allow-ips``: addresses or networks, comma-separated; ``*`` (any peer)
    is refused — a client could then claim any address and dodge the sign-in limits."""
    found = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            found.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise ConfigError(
                f"--forwarded-allow-ips (FERRYMAN_FORWARDED_ALLOW_IPS): {part!r} is not an "
                "address or network (e.g. 127.0.0.1 or 10.0.0.0/24)"
            ) from None
    return found


def check_root_path(text: str) -> str:
    """``--root-path``: ``""`` or ``/a/path`` (no trailing slash, no spaces or queries)."""
    path = text.strip().rstrip("/")
    if path and (
        not path.startswith("/")
        or any(c.isspace() or c in "?#%\\" for c in path)
        or "//" in path
        or any(part in (".", "..") for part in path.split("/"))
    ):
        raise ConfigError(
            f"--root-path (FERRYMAN_ROOT_PATH): {text!r} is not a path like /ferryman"
        )
    return path


def _any_users(db: Any) -> bool:
    from sqlalchemy import select

    from ferryman.db.models import User

    with db.read() as s:
        return s.scalar(select(User.id).limit(1)) is not None


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.", metavar="ADDRESS")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    worker: Annotated[
        bool | None,
        typer.Option(
            help="Run the embedded worker (--no-worker: API and pages only). Default: "
            "FERRYMAN_EMBEDDED_WORKER (on)."
        ),
    ] = None,
    log_level: LogLevel = "info",
    log_format: LogFormat = "text",
    access_log: Annotated[
        bool, typer.Option(help="Log every request (off for thousands of polling hosts).")
    ] = True,
    proxy_headers: Annotated[
        bool,
        typer.Option(
            "--proxy-headers",
            help="Believe X-Forwarded-For/-Proto from the proxies of --forwarded-allow-ips "
            "(127.0.0.1 when none are named): behind nginx on the same machine.",
        ),
    ] = False,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(
            "--forwarded-allow-ips",
            envvar="FERRYMAN_FORWARDED_ALLOW_IPS",
            metavar="ADDRESSES",
            help="Reverse proxies whose X-Forwarded-For/-Proto are believed: comma-separated "
            "addresses or networks (e.g. 127.0.0.1,10.0.0.0/8); implies --proxy-headers. "
            "Default: none, so the address sign-in limits count is always the connecting peer.",
        ),
    ] = "",
    root_path: Annotated[
        str,
        typer.Option(
            "--root-path",
            envvar="FERRYMAN_ROOT_PATH",
            metavar="PATH",
            help="The path prefix the proxy serves Ferryman under (e.g. /ferryman).",
        ),
    ] = "",
) -> None:
    """Start the server: web UI, REST API and an embedded worker.

    The web UI is at /, the API under /api/v1 (OpenAPI at /docs and /redoc), and /metrics,
    /healthz and /readyz beside them."""
    from ferryman.config.settings import load_settings

    # Options and settings first, before the application is imported (seconds on a small
    # machine): a mistyped one is refused at once.
    level, fmt = check_logging(log_level, log_format)
    proxies = trusted_proxies(forwarded_allow_ips)
    if proxy_headers and not proxies:
        proxies = ["127.0.0.1/32"]
    prefix = check_root_path(root_path)
    settings = load_settings()

    import logging

    import uvicorn

    from ferryman.app import create_app
    from ferryman.bootstrap import ensure_ssh_key, prepare_home
    from ferryman.limits import freeze_start_up_objects, raise_open_files
    from ferryman.observability import logs

    log_config = logs.setup(level, fmt)
    log = logging.getLogger("ferryman.serve")
    raise_open_files()  # an SSH connection per host at once, up to `parallel`
    db = prepare_home(settings)
    public, created = ensure_ssh_key(settings)
    log.info("Ferryman %s: home %s, database %s", __version__, settings.home, redact(db.url))
    if created:
        log.info(
            "Created the server's SSH key; its public key (%s) goes into authorized_keys on "
            "every target host. Show it with `ferryman ssh-key`.",
            public,
        )
    if not _any_users(db):
        log.info(
            "No users yet. Create the first admin with: ferryman admin create-user NAME --superuser"
        )
    app = create_app(settings, db, embedded_worker=worker)
    freeze_start_up_objects()  # no request pauses for a collection of the start-up heap
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=level,
        log_config=log_config,
        access_log=access_log,
        # uvicorn trusts 127.0.0.1 by default; Ferryman trusts only the proxies it is told of
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or [],
        root_path=prefix,
    )


def worker_command(
    concurrency: Annotated[
        int | None,
        typer.Option(help="Deploys run at once (default FERRYMAN_WORKER_CONCURRENCY)."),
    ] = None,
    queue: Annotated[
        list[str] | None,
        typer.Option("--queue", help="Only these queues; repeatable.", metavar="NAME"),
    ] = None,
    log_level: LogLevel = "info",
    log_format: LogFormat = "text",
) -> None:
    """Run a standalone worker against the configured database (no HTTP server).

    SIGTERM drains it: nothing new is claimed and running deploys finish (or stop safely after
    FERRYMAN_DRAIN_GRACE seconds)."""
    from ferryman.config.settings import load_settings

    if concurrency is not None and concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    logging_options = check_logging(log_level, log_format)
    settings = load_settings()  # refused, as options are, before the worker is imported

    import asyncio
    import logging
    import signal

    from ferryman.bootstrap import prepare_home
    from ferryman.jobs.worker import Worker
    from ferryman.limits import raise_open_files
    from ferryman.observability import logs

    logs.setup(*logging_options)
    raise_open_files()  # an SSH connection per host at once, up to `parallel`
    log = logging.getLogger("ferryman.worker")
    db = prepare_home(settings)
    worker = Worker(db, settings, concurrency=concurrency, queues=queue)
    log.info(
        "worker %s on %s, queues: %s", worker.name, redact(db.url), ", ".join(queue or ["all"])
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopping: list[asyncio.Task[None]] = []

        def drain() -> None:
            if not stopping:
                log.info("draining: no new deploys; waiting for running ones")
                stopping.append(asyncio.create_task(worker.stop()))

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, drain)
        await worker.run()
        if stopping:
            await stopping[0]

    asyncio.run(main())


def backup(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="The archive to write (default: ferryman-backup-<UTC time>.tar.gz here).",
        ),
    ] = None,
    artifacts: Annotated[
        bool,
        typer.Option("--with-artifacts", help="Also the pull-mode artifacts (can be large)."),
    ] = False,
) -> None:
    """Back up the database, SSH keys and settings, and the secret key beside them.

    The database copy is consistent while deploys run; SSH keys and LDAP settings go into one
    archive, the secret key into a file beside it: store the two apart."""
    from ferryman import backup as backups
    from ferryman.cli.home import server_home

    settings = server_home(create=False)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    target = output or Path(f"ferryman-backup-{stamp}.tar.gz")
    done = backups.create(settings, target, artifacts=artifacts)
    console.print(
        f"backup written: {done.archive} ({done.size / 1e6:.1f} MB, {done.backend} database, "
        f"schema {done.revision})",
        highlight=False,
    )
    if done.key is not None:
        err.print(
            f"[yellow]the secret key is in {done.key}: store it apart from the backup[/] "
            "(whoever holds both can decrypt every secret; without it they are lost)",
            highlight=False,
        )
    else:
        err.print(
            "[yellow]the secret key is FERRYMAN_SECRET_KEY, not in the backup:[/] keep a copy "
            "apart from it; restoring needs it",
            highlight=False,
        )


def restore(
    archive: Annotated[Path, typer.Argument(help="An archive made by `ferryman backup`.")],
    secret_key: Annotated[
        Path | None,
        typer.Option(
            "--secret-key",
            help="The key file written beside the backup (or set FERRYMAN_SECRET_KEY).",
        ),
    ] = None,
) -> None:
    """Restore a backup into a new FERRYMAN_HOME, then migrate it to this version's schema.

    For PostgreSQL or MariaDB, FERRYMAN_DATABASE_URL names a new, empty database of the same
    kind."""
    from ferryman import backup as backups
    from ferryman.bootstrap import prepare_home
    from ferryman.config.settings import load_settings
    from ferryman.secretbox import KEY_ENV

    settings = load_settings()
    if secret_key is not None:
        try:
            key = secret_key.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read {secret_key}: {exc.strerror}") from None
    elif os.environ.get(KEY_ENV, "").strip():
        key = os.environ[KEY_ENV].strip().encode()
    else:
        raise ConfigError(
            f"restoring needs the backup's secret key: --secret-key FILE (written beside the "
            f"backup) or {KEY_ENV}"
        )
    if not archive.is_file():
        raise ConfigError(f"no backup at {archive}")
    done = backups.restore(settings, archive, key)
    prepare_home(settings)  # migrates to this version's schema and checks the key
    console.print(
        f"restored {archive} into {done.home} ({done.backend} database made by Ferryman "
        f"{done.ferryman} at schema {done.revision}, now {__version__}); start it with "
        "`ferryman serve`",
        highlight=False,
    )
