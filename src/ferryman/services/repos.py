"""Reading a project's repository for people: refs to choose from, a ref resolved to its
commit, and what changes between two commits (the ticket preview). Nothing here writes."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ferryman.config.project import ProjectConfig
from ferryman.config.settings import Settings
from ferryman.domain import validate
from ferryman.errors import ValidationError, VcsError
from ferryman.vcs.base import Changes, Resolved
from ferryman.vcs.factory import SpacePolicy, open_repo

TIMEOUT = 120.0


def _env_name(config: ProjectConfig, env: str | None) -> str:
    return env if env else sorted(config.environments)[0]


async def resolve(
    settings: Settings,
    config: ProjectConfig,
    env: str,
    ref: str,
    space: SpacePolicy,
) -> Resolved:
    """``space``: the project's (its mirror, key, host keys and local-repository policy)."""
    validate.ref(ref)
    repo = open_repo(settings, config, config.environment(env), space=space, timeout=TIMEOUT)
    await repo.update()
    return await repo.resolve(ref)


async def require_ref(
    settings: Settings,
    config: ProjectConfig,
    env: str,
    ref: str,
    space: SpacePolicy,
) -> str:
    """The commit ``ref`` names in the repository, or ``ValidationError`` (422) naming the
    ref when the repository, once fetched, has no such branch, tag or commit. A repository
    that cannot be fetched stays a ``VcsError`` (502): that says nothing about the ref."""
    validate.ref(ref)
    repo = open_repo(settings, config, config.environment(env), space=space, timeout=TIMEOUT)
    await repo.update()
    try:
        return (await repo.resolve(ref)).commit
    except VcsError as exc:
        raise ValidationError(
            f"ref {ref!r} does not exist in the repository of {config.project}: {exc.message}",
            ref=ref,
            errors=[{"loc": ["body", "ref"], "code": "unknown_ref", "message": exc.message}],
        ) from None


async def refs(
    settings: Settings,
    config: ProjectConfig,
    *,
    env: str | None = None,
    branch: str | None = None,
    limit: int = 30,
    space: SpacePolicy,
) -> dict[str, Any]:
    """All branches, all tags newest first, and recent commits of one branch."""
    if branch is not None:
        validate.ref(branch)
    environment = config.environment(_env_name(config, env))
    repo = open_repo(settings, config, environment, space=space, timeout=TIMEOUT)
    await repo.update()
    found = await repo.refs(branch, limit)
    return {
        "branch": found.branch,
        "branches": [asdict(r) for r in found.branches],
        "tags": [asdict(r) for r in found.tags],
        "commits": [asdict(c) for c in found.commits],
    }


async def changes(
    settings: Settings,
    config: ProjectConfig,
    env: str,
    ref: str,
    old: str,
    new: str,
    space: SpacePolicy,
) -> Changes:
    """Commits and files between two exact commits. Commits never change, so the local mirror
    answers when it has both (the ticket's commit was fetched when the ticket was made): only
    a miss fetches from the repository."""
    repo = open_repo(settings, config, config.environment(env), space=space, timeout=TIMEOUT)
    try:
        return await repo.changes(ref, old, new, 200)
    except VcsError:
        await repo.update()
        return await repo.changes(ref, old, new, 200)
