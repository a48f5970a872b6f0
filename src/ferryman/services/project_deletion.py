"""Deleting a project (masters, ``project.manage``): refused while one of its deploys is queued,
running or paused. Nothing on the hosts changes — its releases and webroot links stay as they
are. Its records stay too: the row is kept (``deleted_at``) so its deploys, tickets, logs and
audit rows still read with a project; its name is set free as ``NAME~ID`` (``~`` is never in a
project name, so nothing finds it by name and the name can be applied again as a new project).
Its open tickets are cancelled and its webhook secret cleared, in the same transaction."""

from __future__ import annotations

from sqlalchemy import select, update

from ferryman.db.models import Deploy, Project, Ticket, utcnow
from ferryman.db.session import Database
from ferryman.domain.statuses import DEPLOY_ACTIVE, TICKET_OPEN, TicketStatus
from ferryman.errors import Conflict
from ferryman.said import said
from ferryman.services import projects, watch
from ferryman.services.audit import Actor, record
from ferryman.services.spaces import load_space

OPEN_TICKETS = TICKET_OPEN
NAME_LENGTH = 64  # projects.name


def freed_name(name: str, project_id: int) -> str:
    """The name a deleted project keeps: ``NAME~ID``, within the column's length."""
    suffix = f"~{project_id}"
    return name[: NAME_LENGTH - len(suffix)] + suffix


def delete_project(db: Database, actor: Actor, ref: int | str) -> None:
    with db.transaction() as s:
        if s.get_bind().dialect.name in ("mysql", "mariadb"):
            # what is read after the lock below is what was committed before it was granted
            # (MariaDB's REPEATABLE READ would show the snapshot of the first read, before a
            # deploy or a ticket made while this waited; PostgreSQL reads committed already)
            s.connection(execution_options={"isolation_level": "READ COMMITTED"})
        project = projects.find_project(s, actor, ref, "project.manage")
        # the lock order (docs/architecture.md, "Concurrency"): the project's row first, then
        # its tickets' (the UPDATE below); whatever locks a ticket of it locks the project first
        project = s.get(Project, project.id, with_for_update=True) or project
        busy = s.scalars(
            select(Deploy.id)
            .where(Deploy.project_id == project.id, Deploy.status.in_(DEPLOY_ACTIVE))
            .order_by(Deploy.id)
        ).all()
        if busy:
            raise Conflict(
                said(
                    "%(project)s has deploys queued, running or paused (%(deploys)s); "
                    "cancel them or wait, then delete it",
                    project=project.name,
                    deploys=[f"#{i}" for i in busy],
                ),
                deploys=list(busy),
            )
        space = load_space(s, project.space_id)
        cancelled = s.scalars(
            select(Ticket.id).where(
                Ticket.project_id == project.id, Ticket.status.in_(OPEN_TICKETS)
            )
        ).all()
        if cancelled:
            s.execute(
                update(Ticket)
                .where(Ticket.id.in_(cancelled))
                .values(status=TicketStatus.CANCELLED, updated_at=utcnow())
            )
        name = project.name
        watch.end_for_project(s, project.id, f"project {name} deleted")  # no rollback after
        project.name = freed_name(name, project.id)
        project.deleted_at = utcnow()
        project.updated_at = project.deleted_at
        project.hook_secret = ""
        record(
            s,
            actor,
            "project.delete",
            f"space:{space.name}/project:{name}",
            space_id=space.id,
            project_id=project.id,
            name=name,
            cancelled_tickets=list(cancelled),
        )
