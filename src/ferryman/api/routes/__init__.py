"""REST API v1: thin routes — parse, authenticate, call a service, serialise.

Each route names its action of the permissions table with ``perm(...)``; the service it calls
enforces it (``ferryman.services.authz``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ferryman.api.deps import known_query_only
from ferryman.api.envelope import ERROR_RESPONSES
from ferryman.api.routes import (
    access,
    agent,
    agents_admin,
    analysis,
    configs,
    console,
    deploys,
    groups,
    hooks,
    notify,
    projects,
    records,
    release_requests,
    secrets,
    spaces,
    tickets,
    trust,
)

router = APIRouter(
    prefix="/api/v1",
    responses=ERROR_RESPONSES,  # the error envelope, as sent (not FastAPI's {"detail": …})
    dependencies=[Depends(known_query_only)],  # a misspelt filter is refused, not ignored
)
for module in (
    access,
    agent,
    agents_admin,
    spaces,
    groups,
    projects,
    secrets,
    configs,
    tickets,
    release_requests,
    deploys,
    analysis,
    console,
    records,
    notify,
    hooks,
    trust,
):
    router.include_router(module.router)
router.include_router(agent.platform_router)  # /api/v1/{host}: last, agent credentials only
