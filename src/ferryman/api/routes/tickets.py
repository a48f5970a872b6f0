"""Release tickets (上线单): create, submit, approve, reject, deploy, cancel, roll back."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from ferryman.api.deps import DB, MAX_ID, CurrentActor, Id, SettingsDep, perm, wake_worker
from ferryman.api.paging import IsoTime, paged, paginate
from ferryman.api.schemas import (
    CommentBody,
    ReasonBody,
    TicketBody,
    TicketDeployBody,
    TicketRollbackBody,
)
from ferryman.api.views import Ticket, TicketPreview, TicketStatus
from ferryman.services import tickets

router = APIRouter(prefix="/tickets", tags=["tickets"])


@router.get(
    "",
    response_model=list[Ticket],
    openapi_extra=perm("ticket.read") | paged("tickets"),
)
def list_tickets(
    db: DB,
    actor: CurrentActor,
    request: Request,
    response: Response,
    space: str | None = Query(None, max_length=64),
    project: str | None = Query(None, max_length=130),
    status: Annotated[TicketStatus | None, Query()] = None,
    env: str | None = Query(None, max_length=64),
    user: str | None = Query(None, max_length=64, description="who created it"),
    since: Annotated[IsoTime, Query(description="created at or after (ISO 8601)")] = None,
    before: int | None = Query(
        None, ge=1, le=MAX_ID, description="the cursor: tickets older than this id"
    ),
    limit: int = Query(50, ge=1, le=500),
) -> list[dict[str, Any]]:
    """Newest first, ``limit`` at a time; ``Link`` rel="next" and ``X-Total-Count`` as on
    ``GET /deploys``."""
    filters: dict[str, Any] = {
        "space": space,
        "project": project,
        "status": status,
        "env": env,
        "user": user,
        "since": since,
    }
    rows = tickets.list_tickets(db, actor, **filters, limit=limit, before=before)
    paginate(request, response, rows, limit, tickets.count_tickets(db, actor, **filters))
    return rows


@router.post(
    "",
    status_code=201,
    response_model=Ticket,
    response_model_exclude_unset=True,
    openapi_extra=perm("ticket.create"),
)
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


@router.get(
    "/{ticket_id}",
    response_model=Ticket,
    response_model_exclude_unset=True,
    openapi_extra=perm("ticket.read"),
)
def get_ticket(ticket_id: Id, db: DB, actor: CurrentActor) -> dict[str, Any]:
    return tickets.get_ticket(db, actor, ticket_id)


@router.get(
    "/{ticket_id}/preview",
    response_model=TicketPreview,
    response_model_by_alias=True,
    openapi_extra=perm("ticket.read"),
)
async def preview(
    ticket_id: Id, db: DB, settings: SettingsDep, actor: CurrentActor
) -> dict[str, Any]:
    """The exact hosts, what each runs now, and the commits and files that would change."""
    return await tickets.preview(db, settings, actor, ticket_id)


@router.post(
    "/{ticket_id}/submit",
    response_model=Ticket,
    response_model_exclude_unset=True,
    openapi_extra=perm("ticket.create"),
)
def submit(ticket_id: Id, db: DB, actor: CurrentActor) -> dict[str, Any]:
    return tickets.submit_ticket(db, actor, ticket_id)


@router.post(
    "/{ticket_id}/approve",
    response_model=Ticket,
    response_model_exclude_unset=True,
    openapi_extra=perm("ticket.approve"),
)
def approve(
    ticket_id: Id, db: DB, actor: CurrentActor, body: CommentBody | None = None
) -> dict[str, Any]:
    """Masters and owners approve others' tickets, never their own."""
    return tickets.approve_ticket(db, actor, ticket_id, body.comment if body else "")


@router.post(
    "/{ticket_id}/reject",
    response_model=Ticket,
    response_model_exclude_unset=True,
    openapi_extra=perm("ticket.approve"),
)
def reject(ticket_id: Id, body: ReasonBody, db: DB, actor: CurrentActor) -> dict[str, Any]:
    """A rejection needs a reason."""
    return tickets.reject_ticket(db, actor, ticket_id, body.reason)


@router.post(
    "/{ticket_id}/deploy",
    response_model=Ticket,
    response_model_exclude_unset=True,
    openapi_extra=perm("ticket.deploy"),
)
def deploy(
    ticket_id: Id,
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


@router.post(
    "/{ticket_id}/cancel",
    response_model=Ticket,
    response_model_exclude_unset=True,
    openapi_extra=perm("ticket.create"),
)
def cancel(
    ticket_id: Id, db: DB, actor: CurrentActor, body: ReasonBody | None = None
) -> dict[str, Any]:
    """Creators cancel their own tickets, masters anyone's; a queued deploy is dropped."""
    return tickets.cancel_ticket(db, actor, ticket_id, body.reason if body else "")


@router.post(
    "/{ticket_id}/rollback",
    status_code=201,
    response_model=Ticket,
    response_model_exclude_unset=True,
    openapi_extra=perm("ticket.rollback"),
)
def rollback(
    ticket_id: Id,
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
