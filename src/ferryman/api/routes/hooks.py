"""Git webhooks: ``POST /api/v1/hooks/{gitlab|gitea|github}/{project}`` — verified with the
project's secret by each provider's own scheme (no user token, so it is not in the OpenAPI
document of user routes; ``docs/config.md`` describes it); and setting that secret."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from ferryman.api.deps import DB, CurrentActor, SettingsDep, perm
from ferryman.api.schemas import HookSecretBody
from ferryman.api.team_views import HookSecret
from ferryman.services import hooks

router = APIRouter(tags=["git webhooks"])


@router.post("/hooks/{provider}/{project}", include_in_schema=False)
async def receive(
    provider: str, project: str, request: Request, db: DB, settings: SettingsDep
) -> dict[str, Any]:
    """GitLab (``X-Gitlab-Token``), Gitea/Gogs (``X-Gitea-Signature``: hex HMAC-SHA256 of the
    body) or GitHub (``X-Hub-Signature-256``). A push to a branch an environment triggers on,
    or a new tag, makes a ticket there (and queues its deploy where ``auto_deploy``). A replayed
    delivery or a bad signature: 401, nothing made. The project and the signature header are
    checked before the body is read, the signature while reading it (``hooks.read_signed``);
    the body is bounded (5 MiB, ``api/limits.py``)."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    found = await asyncio.to_thread(hooks.target, db, provider, project, headers)
    body = await hooks.read_signed(found, headers, request.stream())
    return await hooks.receive(db, settings, found, headers, body)


@router.put(
    "/projects/{project}/hook-secret",
    response_model=HookSecret,
    openapi_extra=perm("project.manage"),
)
def set_secret(
    project: str, db: DB, actor: CurrentActor, body: HookSecretBody | None = None
) -> dict[str, str]:
    """Set the webhook secret (or generate one): returned this once, stored encrypted."""
    return {"secret": hooks.set_secret(db, actor, project, body.secret if body else "")}
