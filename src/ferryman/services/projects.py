"""Projects: created or updated from one validated configuration (``ferryman apply``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ferryman.config.project import ProjectConfig, dump_project, parse_project
from ferryman.db.models import Project, utcnow
from ferryman.db.session import Database
from ferryman.errors import NotFound
from ferryman.services.audit import Actor, record


def apply_project(db: Database, actor: Actor, config: ProjectConfig) -> tuple[Project, bool]:
    """Create the project or replace its configuration; returns (project, created)."""
    data = dump_project(config)
    with db.transaction() as s:
        project = s.scalar(select(Project).where(Project.name == config.project))
        created = project is None
        if project is None:
            project = Project(name=config.project, config=data)
            s.add(project)
        else:
            project.config = data
            project.updated_at = utcnow()
        s.flush()
        record(
            s,
            actor,
            "project.create" if created else "project.update",
            f"project:{config.project}",
            environments=sorted(config.environments),
        )
        return project, created


def get_project(db: Database, name: str) -> Project:
    with db.read() as s:
        project = s.scalar(select(Project).where(Project.name == name))
        if project is None:
            raise NotFound(f"no project named {name!r}")
        return project


def project_config(project: Project) -> ProjectConfig:
    return parse_project(project.config)


def list_projects(db: Database) -> list[Project]:
    with db.read() as s:
        return list(s.scalars(select(Project).order_by(Project.name)))


def summary(project: Project) -> dict[str, Any]:
    return {
        "name": project.name,
        "repo": project.config.get("repo"),
        "environments": sorted(project.config.get("environments", {})),
        "updated_at": project.updated_at.isoformat(),
    }
