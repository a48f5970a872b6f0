"""Release requests, the pull-mode platform's API (``docs/pull-mode.md``):
``POST /project`` makes a ticket (and the project settings it needs), ``GET`` and ``PUT
/project/{id}`` read and change one not yet queued, ``DELETE /project/{id}`` cancels it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from ferryman.api.deps import DB, CurrentActor, Id, SettingsDep, perm
from ferryman.api.paging import iso_only
from ferryman.api.views import Ticket, View
from ferryman.domain.release_request import COMMAND_LIMIT
from ferryman.services import release_requests

router = APIRouter(prefix="/project", tags=["release requests"])

Package = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+:-]{0,127}$")]
Command = Annotated[str | None, Field(default=None, max_length=COMMAND_LIMIT)]
Time = Annotated[datetime | None, BeforeValidator(iso_only)]


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: Time = Field(default=None, description="start no earlier (ISO 8601; UTC if no zone)")
    end: Time = Field(default=None, description="start no later (ISO 8601; UTC if no zone)")


class _Fields(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    dependencies: list[Package] | None = Field(
        default=None,
        max_length=200,
        description="packages every host must have (requires.packages)",
    )
    build: Command = Field(default=None, description="the CI build (tasks.post_deploy)")
    test: Command = Field(
        default=None, description="the unit tests, after the build (tasks.post_deploy)"
    )
    start: Command = Field(default=None, description="after the switch (tasks.post_release)")
    stop: Command = Field(default=None, description="before the switch (tasks.pre_release)")
    hosts: list[Annotated[str, StringConstraints(max_length=300)]] | None = Field(
        default=None, max_length=5000, description="the hosts to release to (all when absent)"
    )
    window: Window | None = Field(default=None, description="when the release may start")
    title: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)

    def settings(self) -> dict[str, Any]:
        return {
            "dependencies": self.dependencies,
            "build": self.build,
            "test": self.test,
            "start": self.start,
            "stop": self.stop,
        }


class ReleaseRequestBody(_Fields):
    project: str = Field(min_length=1, max_length=130, description="id, NAME or SPACE:NAME")
    env: str = Field(min_length=1, max_length=64)
    version: str = Field(min_length=1, max_length=200, description="the ref to release")


class ReleaseRequestChange(_Fields):
    version: str | None = Field(default=None, min_length=1, max_length=200)


class RequestWindow(View):
    start: str | None
    end: str | None


class RequestSettings(View):
    dependencies: list[str]
    build: str
    test: str
    start: str
    stop: str
    hosts: list[str] | None
    window: RequestWindow


class ReleaseRequest(Ticket):
    request: RequestSettings


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@router.post(
    "",
    status_code=201,
    response_model=ReleaseRequest,
    openapi_extra=perm("ticket.create"),
)
async def create(
    body: ReleaseRequestBody, db: DB, settings: SettingsDep, actor: CurrentActor
) -> dict[str, Any]:
    """A ticket for ``version`` of ``project`` ``env``, after the settings it asks for
    (changing them needs a master). Where the environment needs approval the ticket waits
    for it."""
    window = body.window or Window()
    return await release_requests.create(
        db,
        settings,
        actor,
        body.project,
        body.env,
        body.version,
        body.settings(),
        title=body.title or "",
        description=body.description or "",
        hosts=body.hosts,
        window_start=_utc(window.start),
        window_end=_utc(window.end),
    )


@router.get("/{request_id}", response_model=ReleaseRequest, openapi_extra=perm("ticket.read"))
def get(request_id: Id, db: DB, actor: CurrentActor) -> dict[str, Any]:
    return release_requests.get(db, actor, request_id)


@router.put("/{request_id}", response_model=ReleaseRequest, openapi_extra=perm("ticket.create"))
async def change(
    request_id: Id,
    body: ReleaseRequestChange,
    db: DB,
    settings: SettingsDep,
    actor: CurrentActor,
) -> dict[str, Any]:
    """Change a request not yet queued; what is left out stays. One approved where approval
    is needed goes back to review."""
    window: dict[str, datetime | None] | None = None
    if body.window is not None:
        sent = body.window.model_fields_set
        window = {k: _utc(getattr(body.window, k)) for k in ("start", "end") if k in sent}
    return await release_requests.update(
        db,
        settings,
        actor,
        request_id,
        body.settings(),
        version=body.version,
        title=body.title,
        description=body.description,
        hosts=body.hosts,
        window=window,
    )


@router.delete("/{request_id}", response_model=ReleaseRequest, openapi_extra=perm("ticket.create"))
def cancel(request_id: Id, db: DB, actor: CurrentActor) -> dict[str, Any]:
    """Cancel it (a queued deploy is withdrawn; a running one stops at its next safe point)."""
    return release_requests.cancel(db, actor, request_id)
