"""Test helpers: repositories on the git host, project configs, running a deploy to its end."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from ferryman.config.project import parse_project
from ferryman.config.settings import Settings
from ferryman.db.session import Database
from ferryman.jobs.deploy_job import run_deploy
from ferryman.services import deploy_views, deploys, projects, queue, users
from ferryman.services.audit import Actor
from ferryman.testing.fleet import Fleet, FleetHost

_names = itertools.count(1)


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


class Repo:
    """A bare repo on the git host plus a local working clone to commit from."""

    def __init__(self, git_host: FleetHost, work: Path, name: str) -> None:
        self.name = name
        self.bare = git_host.root / "git" / f"{name}.git"
        self.bare.parent.mkdir(parents=True, exist_ok=True)
        git("init", "--bare", "-q", "-b", "master", str(self.bare), cwd=work)
        self.work = work / name
        git("init", "-q", "-b", "master", str(self.work), cwd=work)
        git("config", "user.email", "dev@example.com", cwd=self.work)
        git("config", "user.name", "Dev", cwd=self.work)
        git("remote", "add", "origin", str(self.bare), cwd=self.work)
        self.url = f"ssh://root@{git_host.address}/srv/git/{name}.git"

    def commit(
        self,
        files: dict[str, str | None],
        message: str = "change",
        tag: str | None = None,
        branch: str = "master",
    ) -> str:
        for rel, content in files.items():
            path = self.work / rel
            if content is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "-m", message, cwd=self.work)
        if tag:
            git("tag", tag, cwd=self.work)
        git("push", "-q", "origin", f"HEAD:{branch}", "--tags", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work).strip()


def unique(prefix: str) -> str:
    return f"{prefix}{next(_names)}"


def project_config(name: str, repo_url: str, hosts: list[FleetHost], **env: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "hosts": [h.address for h in hosts],
        "user": "root",
        "webroot": f"/srv/www/{name}",
        "releases": f"/srv/releases/{name}",
        "keep_releases": 5,
        "task_timeout": 60,
    }
    base.update(env)
    return {"project": name, "repo": repo_url, "environments": {"production": base}}


ADMIN = Actor(id=None, username="alice", is_superuser=True)


def apply(db: Database, config: dict[str, Any]) -> None:
    projects.apply_project(db, ADMIN, parse_project(config))


def member(db: Database, name: str, space: str = "default", role: str | None = None) -> Actor:
    """A new user (password ``correct horse battery``), member of ``space`` with ``role``."""
    from ferryman.services import spaces
    from ferryman.services.audit import SYSTEM

    actor = users.create_user(db, name, "correct horse battery")
    if role:
        spaces.set_member(db, SYSTEM, space, name, role)
    return actor


def apply_as(db: Database, actor: Actor, config: dict[str, Any]) -> None:
    """``ferryman apply`` as ``actor`` (``apply`` is as a superuser)."""
    projects.apply_project(db, actor, parse_project(config))


def deploy(
    db: Database,
    settings: Settings,
    project: str,
    ref: str,
    env: str = "production",
    hosts: list[str] | None = None,
) -> dict[str, Any]:
    d = deploys.request_deploy(db, ADMIN, project, env, ref, hosts)
    return finish(db, settings, d.id)


def rollback(
    db: Database, settings: Settings, project: str, to: str | None = None, env: str = "production"
) -> dict[str, Any]:
    d = deploys.request_rollback(db, ADMIN, project, env, to)
    return finish(db, settings, d.id)


def finish(db: Database, settings: Settings, deploy_id: int) -> dict[str, Any]:
    claim = queue.claim(db, "test-worker")
    assert (claim.id if claim else None) == deploy_id
    asyncio.run(run_deploy(db, settings, deploy_id, claim.holder if claim else ""))
    return deploy_views.get(db, deploy_id)


def live(host: FleetHost, project: str) -> str | None:
    """The release name the host's webroot points to, read on this machine."""
    link = host.path(f"/srv/www/{project}")
    if not link.is_symlink():
        return None
    import os

    return os.path.basename(os.readlink(link))


def release_dirs(host: FleetHost, project: str) -> list[str]:
    root = host.path(f"/srv/releases/{project}")
    # Ferryman's own bookkeeping beside the releases (``.ferryman-run``) is not a release
    return (
        sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
        if root.exists()
        else []
    )


def read_live(host: FleetHost, project: str, rel: str) -> str:
    name = live(host, project)
    assert name, f"{host.name} has no live release"
    return host.path(f"/srv/releases/{project}/{name}/{rel}").read_text()


def printed(db: Database, deploy_id: int, stage: str, host: str = "") -> list[str]:
    """What a deploy-host hook (sandboxed: it can write nowhere outside its workspace) printed
    to stdout, line by line, from the deploy's log."""
    from ferryman.services import deploy_views

    return [
        line["text"]
        for line in deploy_views.logs_after(db, deploy_id, limit=5000)
        if line["stage"] == stage and line["stream"] == "stdout" and line["host"] == host
    ]


def allow_local_repos(db: Database, space: str = "default") -> None:
    """What a superuser's ``ferryman space limits SPACE --allow-local-repos`` does: this
    space may use ``file://`` and local-path repositories (set straight in the database)."""
    from sqlalchemy import select

    from ferryman.db.models import Space

    with db.transaction() as s:
        row = s.scalars(select(Space).where(Space.name == space)).one()
        row.allow_local_repos = True


@functools.cache
def document_app() -> FastAPI:
    """One app of this process to read the OpenAPI document from, and list the routes of, at
    collection (the document depends on no data; no request reaches a database of it): FastAPI
    builds a document once per app."""
    from ferryman.app import create_app
    from ferryman.config.settings import load_settings

    home = Path(tempfile.mkdtemp(prefix="ferryman-openapi-"))
    return create_app(load_settings({"FERRYMAN_HOME": str(home)}), embedded_worker=False)


def create_admin(db: Database) -> None:
    users.create_user(db, "alice", "correct horse battery", superuser=True)


__all__ = ["Fleet"]


@contextlib.contextmanager
def running_server(home: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """A real ``ferryman serve`` (embedded worker) on a free loopback port; yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    full = {**os.environ, "FERRYMAN_HOME": str(home), "FERRYMAN_WORKER_POLL": "0.2", **(env or {})}
    full.pop("FERRYMAN_URL", None)
    full.pop("FERRYMAN_TOKEN", None)
    exe = shutil.which("ferryman", path=os.path.dirname(sys.executable)) or "ferryman"
    # Its stderr goes to a file, read only when it fails to start: a pipe nobody reads while
    # it runs would block the server once full. Leaving the ``with`` closes the file and
    # reaps the process, however the test ends (or the server fails to start).
    with (
        tempfile.TemporaryFile() as stderr,
        subprocess.Popen(
            [exe, "serve", "--port", str(port)],
            env=full,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        ) as proc,
    ):
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 90  # a loaded 2-core machine starts it in seconds, not ms
            while True:
                try:
                    httpx.get(url + "/healthz", timeout=1)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        proc.kill()
                        proc.wait()
                        stderr.seek(0)
                        raise RuntimeError(
                            "server did not start: " + stderr.read().decode(errors="replace")
                        ) from None
                    time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def postgres_with_key(tmp_path: Path) -> Iterator[Database]:
    """A fresh PostgreSQL database with a secret key attached, dropped afterwards (skipped,
    or failed where databases are required, when PostgreSQL or pg_dump is missing)."""
    import pytest

    from ferryman.bootstrap import attach_key
    from ferryman.secretbox import SecretBox, new_key
    from ferryman.testing import databases

    reason = databases.unavailable("postgresql")
    if reason or not shutil.which("pg_dump"):
        if os.environ.get("FERRYMAN_REQUIRE_DATABASES"):
            pytest.fail(reason or "pg_dump is missing")
        pytest.skip(reason or "pg_dump is missing")
    url = databases.create("postgresql", tmp_path)
    db = Database(url)
    try:
        db.upgrade()
        attach_key(db, SecretBox(new_key()))
        yield db
    finally:
        db.dispose()
        databases.drop(url)


def pg_dump(db: Database) -> bytes:
    db.dispose()
    return subprocess.run(
        ["pg_dump", "-h", "127.0.0.1", "-U", "postgres", db.url.rsplit("/", 1)[1]],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout


def web_session(
    settings: Settings, db: Database, username: str, language: str = "en"
) -> tuple[Any, str]:
    """A browser's session through the sign-in form (password ``correct horse battery``):
    an in-process client of the web UI in ``language``, and the CSRF token its pages carry."""
    import re

    from fastapi.testclient import TestClient

    from ferryman.app import create_app

    client = TestClient(
        create_app(settings, db, embedded_worker=False), headers={"Accept-Language": language}
    )
    signed = client.post(
        "/login",
        data={"username": username, "password": "correct horse battery"},
        follow_redirects=False,
    )
    assert signed.status_code == 303, signed.text[:300]
    token = re.search(r'name="csrf-token" content="([^"]*)"', client.get("/account").text)
    assert token is not None
    return client, token.group(1)
