"""The ``ferryman`` command.

Server-side commands (``serve``, ``worker``, ``ssh-key``, ``admin …``) work on the local home and
database directly. User commands are thin clients of the REST API. Exit status: 0 success,
1 failure (a deploy failed, a check failed, the server refused), 2 usage or config errors.
"""

from __future__ import annotations

import json
import sys
import traceback
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ferryman import __version__
from ferryman.cli import agent, configs, notify, rollout, teams, tickets, trust
from ferryman.cli.client import Client, save_credentials
from ferryman.cli.follow import follow
from ferryman.cli.output import show
from ferryman.config.project import load_project_yaml
from ferryman.config.settings import load_settings
from ferryman.errors import ConfigError, FerrymanError

app = typer.Typer(
    help="Ferryman (摆渡人): self-hosted web deployment over SSH.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
admin = typer.Typer(
    help="Administration on the server machine (direct database access).", no_args_is_help=True
)
app.add_typer(admin, name="admin")
app.add_typer(teams.space_app, name="space")
app.add_typer(teams.env_app, name="env")
app.add_typer(teams.server_app, name="server")
app.add_typer(teams.user_app, name="user")
app.add_typer(teams.token_app, name="token")
app.add_typer(tickets.ticket_app, name="ticket")
app.add_typer(teams.secret_app, name="secret")
app.add_typer(configs.config_app, name="config")
app.add_typer(agent.agent_app, name="agent")
app.add_typer(notify.notify_app, name="notify")
app.add_typer(rollout.rollout_app, name="rollout")
_ = trust  # importing it registers `server trust`, `space trust-repo`, `space ssh-key`
app.command("hook-secret")(notify.hook_secret)
app.command("audit")(tickets.audit)
app.command("stats")(tickets.stats)
console = Console()
err = Console(stderr=True)
_state = {"debug": False}


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    _state["debug"] = debug
    if version:
        console.print(__version__)
        raise typer.Exit()


# --- server side ------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    worker: Annotated[bool, typer.Option(help="Run the embedded worker.")] = True,
    log_level: Annotated[
        str, typer.Option("--log-level", help="critical, error, warning, info or debug.")
    ] = "info",
    access_log: Annotated[
        bool, typer.Option(help="Log every request (off for thousands of polling hosts).")
    ] = True,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(
            "--forwarded-allow-ips",
            envvar="FERRYMAN_FORWARDED_ALLOW_IPS",
            help="Reverse proxies whose X-Forwarded-For/-Proto are believed: comma-separated "
            "addresses or networks (e.g. 127.0.0.1,10.0.0.0/8). Default: none, so the "
            "address sign-in limits count is always the connecting peer.",
        ),
    ] = "",
) -> None:
    """Start the server (web UI at /, REST API, OpenAPI at /docs) with an embedded worker."""
    import uvicorn

    from ferryman.api.app import create_app
    from ferryman.bootstrap import ensure_ssh_key, prepare_home

    settings = load_settings()
    db = prepare_home(settings)
    public, created = ensure_ssh_key(settings)
    err.print(f"Ferryman {__version__}: home {settings.home}, database {_redact(db.url)}")
    if created:
        err.print(
            f"Created the server's SSH key; its public key ({public}) goes into "
            "authorized_keys on every target host. Show it with `ferryman ssh-key`."
        )
    err.print(
        "Create the first admin with: ferryman admin create-user NAME --password P --superuser"
    )
    uvicorn.run(
        create_app(settings, db, embedded_worker=worker),
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        # uvicorn trusts 127.0.0.1 by default; Ferryman trusts only the proxies it is told of
        proxy_headers=bool(forwarded_allow_ips.strip()),
        forwarded_allow_ips=forwarded_allow_ips.strip() or [],
    )


@app.command("worker")
def worker_command(
    concurrency: Annotated[
        int | None, typer.Option(help="Deploys run at once (default FERRYMAN_WORKER_CONCURRENCY).")
    ] = None,
    queue: Annotated[
        list[str] | None, typer.Option("--queue", help="Only these queues; repeatable.")
    ] = None,
) -> None:
    """Run a standalone worker against the configured database (no HTTP server).
    SIGTERM drains it: nothing new is claimed and running deploys finish (or stop safely after
    FERRYMAN_DRAIN_GRACE seconds)."""
    import asyncio
    import signal

    from ferryman.bootstrap import prepare_home
    from ferryman.jobs.worker import Worker

    settings = load_settings()
    db = prepare_home(settings)
    worker = Worker(db, settings, concurrency=concurrency, queues=queue)
    err.print(f"worker {worker.name} on {_redact(db.url)}, queues: {', '.join(queue or ['all'])}")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopping: list[asyncio.Task[None]] = []

        def drain() -> None:
            if not stopping:
                err.print("draining: no new deploys; waiting for running ones")
                stopping.append(asyncio.create_task(worker.stop()))

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, drain)
        await worker.run()
        if stopping:
            await stopping[0]

    asyncio.run(main())


@app.command()
def migrate() -> None:
    """Bring the database schema to this version (run after upgrading Ferryman)."""
    from ferryman.bootstrap import prepare_home

    settings = load_settings()
    db = prepare_home(settings)
    err.print(f"database {_redact(db.url)} is up to date")


@app.command("ssh-key")
def ssh_key(
    space: Annotated[
        str | None, typer.Option("--space", help="A space's own key (default: the server's).")
    ] = None,
) -> None:
    """Print the server's public SSH key (the default space's, created by the first
    `ferryman serve`), or a space's own key. Run on the server; `ferryman space ssh-key`
    asks a running server."""
    from ferryman.bootstrap import ensure_ssh_key

    settings = load_settings()
    public, _ = ensure_ssh_key(settings)
    if space is not None:
        from ferryman.bootstrap import prepare_home
        from ferryman.keys import public_key
        from ferryman.services.audit import SYSTEM
        from ferryman.services.host_keys import space_key

        space_id, uses_server_key, _name = space_key(prepare_home(settings), SYSTEM, space)
        console.print(public_key(settings, space_id, uses_server_key), highlight=False)
        return
    console.print(public.read_text().strip(), highlight=False, soft_wrap=True)


@admin.command("create-user")
def create_user(
    name: str,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    superuser: Annotated[bool, typer.Option("--superuser")] = False,
) -> None:
    """Create a user directly in the database (no server needed)."""
    from ferryman.bootstrap import prepare_home
    from ferryman.services import users

    db = prepare_home(load_settings())
    users.create_user(db, name, password, superuser=superuser)
    console.print(f"created user {escape(name)}" + (" (superuser)" if superuser else ""))


@admin.command("add-member")
def add_member(
    space: str,
    user: str,
    role: Annotated[str, typer.Option(help="owner, master, developer or reporter.")],
) -> None:
    """Make USER a member of SPACE with ROLE directly in the database (bootstrapping)."""
    from ferryman.bootstrap import prepare_home
    from ferryman.services import spaces
    from ferryman.services.audit import SYSTEM

    db = prepare_home(load_settings())
    spaces.set_member(db, SYSTEM, space, user, role)
    console.print(f"{escape(user)} is {role} in {escape(space)}")


@admin.command("rotate-key")
def rotate_key() -> None:
    """Encrypt every secret with a new key (the old one stays readable until done), then
    replace the key file (the old one is kept as secret.key.old). With FERRYMAN_SECRET_KEY,
    prints the new key to put there instead."""
    import os

    from ferryman.bootstrap import prepare_home
    from ferryman.secretbox import KEY_ENV, SecretBox, key_file, load_key, new_key
    from ferryman.services.secrets import rotate_all

    settings = load_settings()
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


# --- user side (REST clients) -------------------------------------------------------------


@app.command()
def login(
    server: Annotated[str, typer.Option(help="Server URL, e.g. http://ferryman:8080")],
    username: Annotated[str, typer.Option()],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True)],
) -> None:
    """Log in and store a token for the other commands."""
    client = Client(url=server, token="")
    data = client.post("/auth/login", {"username": username, "password": password})
    path = save_credentials(server, data["token"], username)
    console.print(f"logged in to {escape(server)} as {escape(username)} (token saved in {path})")


@app.command()
def apply(file: Annotated[Path, typer.Option("-f", "--file", help="Project YAML file.")]) -> None:
    """Create or update a project from its YAML file."""
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {file}: {exc.strerror}") from None
    load_project_yaml(text)  # the same schema the server applies: fail early, same messages
    data = yaml.safe_load(text)
    result = Client().post("/projects", data)
    verb = "created" if result["created"] else "updated"
    console.print(
        f"{verb} project {escape(result['name'])} "
        f"(environments: {', '.join(result['environments'])})"
    )


@app.command()
def projects(
    space: Annotated[str | None, typer.Option(help="Only this space.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List projects."""
    rows = Client().get("/projects", params={"space": space} if space else {})
    show(rows, ["id", "space", "name", "repo", "environments"], as_json)


@app.command()
def copy(
    project: str,
    name: str,
    space: Annotated[str | None, typer.Option(help="Target space (default: the same).")] = None,
) -> None:
    """Copy PROJECT's configuration as NAME, in its space or another one you master."""
    data = Client().post(f"/projects/{project}/copy", {"name": name, "space": space})
    console.print(f"copied to {escape(data['space'])}:{escape(data['name'])} (#{data['id']})")


@app.command()
def refs(
    project: str,
    branch: Annotated[str | None, typer.Option(help="Whose commits to list.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Branches, tags (newest first) and recent commits, read from the repository."""
    data = Client().get(f"/projects/{project}/refs", params={"branch": branch} if branch else {})
    if as_json:
        show(data, as_json=True)
        return
    show(data["branches"], ["name", "commit", "date"])
    show(data["tags"], ["name", "commit", "date"])
    show(data["commits"], ["id", "author", "date", "message"])


@app.command()
def deploy(
    project: str,
    env: Annotated[str, typer.Option("--env", help="Environment name.")],
    ref: Annotated[
        str | None, typer.Option("--ref", help="Branch, tag or commit (svn: path[@rev]).")
    ] = None,
    hosts: Annotated[str | None, typer.Option(help="Only these hosts, comma-separated.")] = None,
    at: Annotated[
        datetime | None, typer.Option("--at", help="Start no earlier than this (UTC).")
    ] = None,
    config_only: Annotated[
        bool,
        typer.Option(
            "--config-only", help="Ship the live release again with the current config files."
        ),
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Follow until it ends.")] = False,
) -> None:
    """Queue a deploy of REF to every host of PROJECT's ENV (or --hosts); with --config-only,
    a new release of what the hosts run now carrying the current config files."""
    if bool(ref) == config_only:
        raise ConfigError("give --ref REF or --config-only (one of them)")
    body: dict[str, Any] = {"env": env, "ref": ref} if ref else {"env": env, "config_only": True}
    if at:
        body["not_before"] = at.isoformat()
    if hosts:
        body["hosts"] = [h.strip() for h in hosts.split(",") if h.strip()]
    client = Client()
    result = client.post(f"/projects/{project}/deploys", body)
    console.print(f"deploy #{result['id']} queued")
    if wait:
        raise typer.Exit(follow(client, result["id"], console))


@app.command()
def rollback(
    project: str,
    env: Annotated[str, typer.Option("--env")],
    to: Annotated[
        str | None, typer.Option("--to", help="Release name (default: previous).")
    ] = None,
    emergency: Annotated[
        bool,
        typer.Option(
            "--emergency", help="Link switch only, every host at once, no hooks (masters)."
        ),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Allow a release marked bad.")] = False,
    wait: Annotated[bool, typer.Option("--wait")] = False,
) -> None:
    """Switch every host back to the previous release (or --to RELEASE). Without
    --emergency a gray-released environment rolls back batch by batch with health checks."""
    client = Client()
    body = {"env": env, "to": to, "emergency": emergency, "force": force}
    result = client.post(f"/projects/{project}/rollbacks", body)
    console.print(f"rollback #{result['id']} queued")
    if wait:
        raise typer.Exit(follow(client, result["id"], console))


@app.command()
def releases(
    project: str,
    env: Annotated[str, typer.Option("--env")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    verify: Annotated[
        bool, typer.Option("--verify", help="Ask every host where it really points (drift).")
    ] = False,
) -> None:
    """Which release is live on each host, and which are kept there; with --verify, hosts
    that differ from the records (or were changed by hand) are flagged, and the exit status is
    1 when any is."""
    params = {"verify": "true"} if verify else {}
    data = Client().get(f"/projects/{project}/envs/{env}/releases", params=params)
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        table = Table("host", "live release", "kept", *(["drift"] if verify else []))
        for row in data["hosts"]:
            cells = [row["host"], row["live"] or "-", str(len(row["releases"]))]
            if verify:
                cells.append(f"[red]{escape(row['drift'])}[/]" if row["drift"] else "ok")
            table.add_row(*cells)
        console.print(table)
        if data.get("bad"):
            console.print("marked bad (aborted rollouts): " + ", ".join(data["bad"]))
    if verify and any(row["drift"] for row in data["hosts"]):
        raise typer.Exit(1)


@app.command()
def retry(
    deploy_id: int,
    failed_only: Annotated[
        bool, typer.Option("--failed-only", help="Only the hosts that failed.")
    ] = False,
    wait: Annotated[bool, typer.Option("--wait")] = False,
) -> None:
    """Deploy a failed deploy's commit again, reusing its build (no checkout, no build)."""
    client = Client()
    data = client.post(f"/deploys/{deploy_id}/retry", {"failed_only": failed_only})
    console.print(f"retry of #{deploy_id} queued as deploy #{data['id']}")
    if wait:
        raise typer.Exit(follow(client, data["id"], console))


@app.command()
def cancel(deploy_id: int, reason: Annotated[str, typer.Option("--reason")] = "") -> None:
    """Stop a deploy: a queued one never starts, a running one stops at its next safe point."""
    data = Client().post(f"/deploys/{deploy_id}/cancel", {"reason": reason})
    state = "cancelled" if data["status"] == "cancelled" else "stopping at the next safe point"
    console.print(f"{data['kind']} #{deploy_id}: {state}")


@app.command()
def logs(
    deploy_id: int,
    follow_: Annotated[bool, typer.Option("--follow", "-f", help="Keep following.")] = False,
) -> None:
    """Print a deploy's log (and follow it until it ends with --follow)."""
    client = Client()
    if follow_:
        raise typer.Exit(follow(client, deploy_id, console, live_table=False))
    after = 0
    while True:
        page = client.get(f"/deploys/{deploy_id}/logs", params={"after": after})
        for entry in page["lines"]:
            console.print(
                f"[cyan][{escape(entry['host'] or 'deploy')}][/] {escape(entry['text'])}",
                highlight=False,
            )
        if len(page["lines"]) < 1000:
            break
        after = page["next"]


@app.command()
def check(
    project: str,
    env: Annotated[str, typer.Option("--env")],
) -> None:
    """Check SSH, host keys, directories, tools and the repository; one line per check."""
    data = Client().post(f"/projects/{project}/envs/{env}/check")
    for row in data["checks"]:
        mark = "[green]ok  [/]" if row["ok"] else "[red]FAIL[/]"
        detail = f" — {escape(row['detail'])}" if row["detail"] else ""
        console.print(
            f"{mark} {escape(row['host'])}: {escape(row['check'])}{detail}", highlight=False
        )
    if not data["ok"]:
        raise typer.Exit(1)


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def main() -> None:
    try:
        app()
    except FerrymanError as exc:
        if _state["debug"]:
            traceback.print_exc()
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
