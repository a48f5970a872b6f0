"""The one row-lock order (``docs/architecture.md``, "Databases"): a project's row before
every other row of it that a transaction locks or writes — its tickets, its watches, the
deploys and tickets it inserts for it. A project deletion locks the project's row (``FOR
UPDATE``), then cancels its open tickets and ends its watches; whatever writes rows of a
project takes the project's row shared first (``lock_project_shared``), so the two wait for
each other in one order and never deadlock, and a writer that waited for a deletion sees it.

Shared (PostgreSQL: ``FOR KEY SHARE``; MariaDB: ``LOCK IN SHARE MODE``): writers of one
project do not wait for each other, only for a deletion (or, on MariaDB, an apply) of it.
SQLite takes one write lock per database: there the lock is a plain read."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ferryman.db.models import Project
from ferryman.errors import NotFound
from ferryman.said import said


def lock_project_shared(s: Session, project_id: int) -> Project | None:
    """The project's row locked shared and read again (a locking read shows what was last
    committed, even inside MariaDB's REPEATABLE READ snapshot): a deletion committed before
    the lock was granted is seen in ``deleted_at``, and one that starts now waits for this
    transaction. None when there is no such row."""
    return s.get(
        Project,
        project_id,
        with_for_update={"read": True, "key_share": True},
        populate_existing=True,
    )


def lock_live_project(s: Session, project: Project) -> Project:
    """``project`` locked shared (``lock_project_shared``) and read again — refused as a
    missing project is (``NotFound``, "no project NAME") when it was deleted meanwhile, so
    nothing is inserted for a project that is gone (its row stays: the foreign key would
    let the insert through)."""
    name = project.name  # before the read again: a deletion frees the name (NAME~ID)
    fresh = lock_project_shared(s, project.id)
    if fresh is None or fresh.deleted_at is not None:
        raise NotFound(said("no project %(name)s", name=repr(name)))
    return fresh
