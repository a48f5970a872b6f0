"""Open a project's repository with the SSH key and known_hosts its environment names."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ferryman.config.project import Environment, ProjectConfig
from ferryman.config.settings import Settings
from ferryman.vcs.base import LineCallback, SshOptions, Vcs
from ferryman.vcs.git import GitRepo
from ferryman.vcs.svn import SvnRepo


def mirror_path(cache: Path, url: str) -> Path:
    """One cached mirror per repository URL, shared by every project that uses it."""
    return cache / (hashlib.sha256(url.encode()).hexdigest()[:24] + ".git")


def open_repo(
    settings: Settings,
    project: ProjectConfig,
    env: Environment,
    *,
    on_line: LineCallback | None = None,
    timeout: float | None = None,
) -> Vcs:
    ssh = SshOptions(
        key=env.repo_ssh_key or env.ssh_key or str(settings.ssh_key),
        known_hosts=env.repo_known_hosts or env.known_hosts or str(settings.known_hosts),
    )
    limit = timeout if timeout is not None else env.task_timeout
    if project.vcs_kind == "svn":
        return SvnRepo(project.repo, ssh, on_line=on_line, timeout=limit)
    mirror = mirror_path(settings.repo_cache, project.repo)
    return GitRepo(project.repo, mirror, ssh, on_line=on_line, timeout=limit)
