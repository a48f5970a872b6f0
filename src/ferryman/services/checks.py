"""Checks run on request, outside any deploy: the one way the API's routes and the web pages
reach hosts. Routes and pages never open SSH or build a pipeline context themselves; they call
these, which authorise the actor, use the space's own key and pinned host keys, and close
every connection they open.

- ``server``: connect to one server with its space's key and run ``true`` (the servers page's
  SSH check), answering what failed and why.
- ``project``: ``ferryman check`` for a project environment (``pipeline/check.py``: SSH, host
  keys, directories, tools, the live release against its manifest, the repository), audited.
- ``releases``: where each host's webroot really points and whether the releases it serves or
  keeps still match their manifests (``pipeline/verify.py``), for ``releases --verify``.

Each waits for its hosts (bounded by the environment's timeouts); a check someone does not
wait for would be a job.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

from ferryman.config.project import ProjectConfig
from ferryman.config.settings import Settings
from ferryman.db.session import Database
from ferryman.errors import RemoteError
from ferryman.pipeline.check import as_dicts, run_checks
from ferryman.pipeline.context import new_context
from ferryman.pipeline.verify import verify
from ferryman.remote.executor import Executor, Target
from ferryman.services import inventory, projects
from ferryman.services.audit import Actor
from ferryman.services.deploy_records import DatabaseWriter
from ferryman.services.deploy_store import database_store
from ferryman.services.space_access import space_access

SERVER_CONNECT_TIMEOUT = 10
SERVER_COMMAND_TIMEOUT = 15

Cause = Literal["", "host_key", "permission", "unreachable"]


@dataclass(frozen=True)
class ServerCheck:
    """The answer of ``server``: ``ok``, or the error's message and its cause (the host key
    is not the pinned or known one; the key was refused; anything else: address, port,
    firewall)."""

    ok: bool
    user: str
    message: str = ""
    cause: Cause = ""


async def server(db: Database, settings: Settings, actor: Actor, server_id: int) -> ServerCheck:
    """Connect to a server with its space's key, checking its host key, and run ``true``."""
    row = await asyncio.to_thread(inventory.get_server, db, actor, server_id)
    target = Target(
        key=row["name"], address=row["address"], port=row["port"], user=row["user"] or "root"
    )
    access = await asyncio.to_thread(space_access, db, settings, row["space_id"])
    executor = Executor(
        client_key=access.ssh_key or settings.ssh_key,
        known_hosts=settings.known_hosts,
        host_keys={target.key: access.host_keys.get(row["host"].rpartition("@")[2], "")},
        connect_timeout=SERVER_CONNECT_TIMEOUT,
    )
    try:
        await executor.run(target, ("true",), stage="check", timeout=SERVER_COMMAND_TIMEOUT)
        return ServerCheck(ok=True, user=target.user)
    except RemoteError as exc:
        text = exc.message
        cause: Cause = (
            "host_key"
            if "host key" in text
            else "permission"
            if "permission denied" in text
            else "unreachable"
        )
        return ServerCheck(ok=False, user=target.user, message=text, cause=cause)
    finally:
        await executor.close()


async def project(
    db: Database, settings: Settings, actor: Actor, ref: str, env: str
) -> dict[str, Any]:
    """Every check of a project environment, one per host and check (``project.detect``);
    recorded in the audit log with its outcome."""
    found, config = await asyncio.to_thread(
        projects.project_config, db, actor, ref, "project.detect"
    )
    ctx = new_context(
        settings,
        config,
        env,
        writer=DatabaseWriter(db),
        store_for=database_store(db),
        space=await asyncio.to_thread(space_access, db, settings, found.space_id),
    )
    results = as_dicts(await run_checks(ctx))
    ok = all(r["ok"] for r in results)
    await asyncio.to_thread(projects.record_detect, db, actor, found, env, ok)
    return {"project": found.name, "env": env, "ok": ok, "checks": results}


async def releases(
    db: Database,
    settings: Settings,
    space_id: int,
    config: ProjectConfig,
    env: str,
    live: dict[str, str],
    kept: dict[str, list[str]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per host, what the hosts say against the records (``live``: the release each is
    recorded to serve; ``kept``: the releases recorded there): ``drift``, ``damaged`` and
    ``notes`` as ``pipeline/verify.py`` finds them. The caller has read the project with the
    actor's rights (``project.read``)."""
    ctx = new_context(
        settings,
        config,
        env,
        writer=DatabaseWriter(db),
        store_for=database_store(db),
        space=await asyncio.to_thread(space_access, db, settings, space_id),
    )
    return await verify(ctx, live, kept)
