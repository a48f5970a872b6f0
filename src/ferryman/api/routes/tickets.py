"""Release tickets (上线单): create, submit, approve, reject, deploy, cancel, roll back."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from ferryman.api.deps import DB, CurrentActor, SettingsDep, perm, wake_worker
from ferryman.api.schemas import (
    CommentBody,
    ReasonBody,
    TicketBody,
    TicketDeployBody,
    TicketRollbackBody,
)
from ferryman.services import tickets

router = APIRouter(prefix="/tickets", tags=["tickets"])


@router.get("", openapi_extra=perm("ticket.read"))
def list_tickets(
    db: DB,
    actor: CurrentActor,
    space: str | None = Query(None, max_length=64),
    project: str | None = Query(None, max_length=130),
    status: str | None = Query(None, max_length=24),
    limit: int = Query(50, ge=1, le=500),
) -> list[dict[str, Any]]:
    return tickets.list_tickets(db, actor, space=space, project=project, status=status, limit=limit)


@router.post("", status_code=201, openapi_extra=perm("ticket.create"))
async def create_ticket(
    body: TicketBody, db: DB, settings: SettingsDep, actor: CurrentActor
) -> dict[str, Any]:
    """The ref is resolved to its commit now; that commit is what is approved and shipped.
    Where the environment needs approval the ticket waits for it (``pending_approval``);
    ``draft: true`` keeps it a draft until submitted."""
    return await tickets.create_ticket(
        db,
        settings,
        actor,
        body.project,
        body.env,
        body.ref,
        title=body.title,
        description=body.description,
        hosts=body.hosts,
        not_before=body.not_before,
        draft=body.draft,
        config_only=body.config_only,
    )


@router.get("/{ticket_id}", openapi_extra=perm("ticket.read"))
def get_ticket(ticket_id: int, db: DB, actor: CurrentActor) -> dict[str, Any]:
    return tickets.get_ticket(db, actor, ticket_id)


@router.get("/{ticket_id}/preview", openapi_extra=perm("ticket.read"))
async def preview(
    ticket_id: int, db: DB, settings: SettingsDep, actor: CurrentActor
) -> dict[str, Any]:
    """The exact hosts, what each runs now, and the commits and files that would change."""
    return await tickets.preview(db, settings, actor, ticket_id)


@router.post("/{ticket_id}/submit", openapi_extra=perm("ticket.create"))
def submit(ticket_id: int, db: DB, actor: CurrentActor) -> dict[str, Any]:
    return tickets.submit_ticket(db, actor, ticket_id)


@router.post("/{ticket_id}/approve", openapi_extra=perm("ticket.approve"))
def approve(
    ticket_id: int, db: DB, actor: CurrentActor, body: CommentBody | None = None
) -> dict[str, Any]:
    """Masters and owners approve others' tickets, never their own."""
    return tickets.approve_ticket(db, actor, ticket_id, body.comment if body else "")


@router.post("/{ticket_id}/reject", openapi_extra=perm("ticket.approve"))
def reject(ticket_id: int, body: ReasonBody, db: DB, actor: CurrentActor) -> dict[str, Any]:
    """A rejection needs a reason."""
    return tickets.reject_ticket(db, actor, ticket_id, body.reason)


@router.post("/{ticket_id}/deploy", openapi_extra=perm("ticket.deploy"))
def deploy(
    ticket_id: int,
    db: DB,
    actor: CurrentActor,
    request: Request,
    body: TicketDeployBody | None = None,
) -> dict[str, Any]:
    """Queue an approved ticket. Before its ``not_before`` this is refused (``too_early``)
    unless ``{"schedule": true}``: then a worker starts it at that time."""
    result = tickets.deploy_ticket(db, actor, ticket_id, bool(body and body.schedule))
    wake_worker(request)
    return result


@router.post("/{ticket_id}/cancel", openapi_extra=perm("ticket.create"))
def cancel(
    ticket_id: int, db: DB, actor: CurrentActor, body: ReasonBody | None = None
) -> dict[str, Any]:
    """Creators cancel their own tickets, masters anyone's; a queued deploy is dropped."""
    return tickets.cancel_ticket(db, actor, ticket_id, body.reason if body else "")


@router.post("/{ticket_id}/rollback", status_code=201, openapi_extra=perm("ticket.rollback"))
def rollback(
    ticket_id: int,
    db: DB,
    actor: CurrentActor,
    request: Request,
    body: TicketRollbackBody | None = None,
) -> dict[str, Any]:
    """A rollback ticket linked to this one, queued at once: back to the release this
    ticket's deploy replaced (or ``to``)."""
    result = tickets.rollback_ticket(
        db, actor, ticket_id, body.title if body else "", body.to if body else None
    )
    wake_worker(request)
    return result
