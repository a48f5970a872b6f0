"""Open a project's repository with its space's SSH key, pinned host keys and policy."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Protocol

from ferryman.config.project import Environment, ProjectConfig
from ferryman.config.settings import Settings
from ferryman.vcs.base import LineCallback, SshOptions, Vcs, check_repo_url
from ferryman.vcs.git import GitRepo
from ferryman.vcs.svn import SvnRepo

KNOWN_HOSTS = "repo_known_hosts"


class SpacePolicy(Protocol):
    """What a repository needs of its space (``pipeline.context.SpaceAccess`` is one)."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def ssh_key(self) -> Path | None: ...
    @property
    def repo_known_hosts(self) -> str: ...
    @property
    def allow_local_repos(self) -> bool: ...


def mirror_path(cache: Path, url: str, space_id: int = 0) -> Path:
    """One cached mirror per space and repository URL: spaces never share a mirror."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:24]
    return cache / str(space_id) / (digest + ".git")


def repo_known_hosts(settings: Settings, space: SpacePolicy) -> Path | None:
    """The space's pinned repository host keys as a 0600 file (rewritten when they change)."""
    if not space.repo_known_hosts.strip():
        return None
    folder = settings.space_ssh_dir(space.id)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / KNOWN_HOSTS
    text = space.repo_known_hosts.rstrip("\n") + "\n"
    try:
        if path.read_text() == text:
            return path
    except OSError:
        pass
    tmp = path.with_name(f"{KNOWN_HOSTS}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path


def ssh_options(settings: Settings, env: Environment, space: SpacePolicy | None) -> SshOptions:
    """Key: a superuser's ``repo_ssh_key``/``ssh_key``, else the space's, else the server's.
    Known hosts: a superuser's file, else the space's pinned keys plus the server's file."""
    space_key = space.ssh_key if space is not None else None
    key = env.repo_ssh_key or env.ssh_key or str(space_key or settings.ssh_key)
    chosen = env.repo_known_hosts or env.known_hosts
    if chosen:
        return SshOptions(key=key, known_hosts=chosen)
    files = [str(settings.known_hosts)]
    pinned = repo_known_hosts(settings, space) if space is not None else None
    if pinned is not None:
        files.insert(0, str(pinned))
    return SshOptions(key=key, known_hosts=" ".join(files))


def open_repo(
    settings: Settings,
    project: ProjectConfig,
    env: Environment,
    *,
    space: SpacePolicy,
    on_line: LineCallback | None = None,
    timeout: float | None = None,
) -> Vcs:
    """The project's repository as its space may read it: the space's mirror, key and
    pinned host keys; local repositories only where the space allows them."""
    allow_local = space.allow_local_repos
    check_repo_url(project.repo, allow_local, space.name)
    ssh = ssh_options(settings, env, space)
    limit = timeout if timeout is not None else env.task_timeout
    if project.vcs_kind == "svn":
        return SvnRepo(project.repo, ssh, on_line=on_line, timeout=limit, allow_local=allow_local)
    settings.repo_cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    mirror = mirror_path(settings.repo_cache, project.repo, space.id)
    return GitRepo(
        project.repo, mirror, ssh, on_line=on_line, timeout=limit, allow_local=allow_local
    )
