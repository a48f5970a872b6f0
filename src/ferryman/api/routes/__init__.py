"""REST API v1: thin routes — parse, authenticate, call a service, serialise.

Each route names its action of the permissions table with ``perm(...)``; the service it calls
enforces it (``ferryman.services.authz``)."""

from __future__ import annotations

from fastapi import APIRouter

from ferryman.api.routes import (
    access,
    agent,
    agents_admin,
    configs,
    console,
    deploys,
    hooks,
    notify,
    projects,
    records,
    secrets,
    spaces,
    tickets,
    trust,
)

router = APIRouter(prefix="/api/v1")
for module in (
    access,
    agent,
    agents_admin,
    spaces,
    projects,
    secrets,
    configs,
    tickets,
    deploys,
    console,
    records,
    notify,
    hooks,
    trust,
):
    router.include_router(module.router)
