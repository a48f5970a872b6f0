"""Pull mode: what hosts call with their own token (``Authorization: Bearer TOKEN``, or HTTP
basic auth with the token as the password — ``curl -u HOST:TOKEN`` — for pollers that are a
cron line; optionally signed with ``X-Ferryman-Timestamp`` and ``X-Ferryman-Signature``, keyed
by the host's signing key, not its token). A host reads and reports only its own deploys; a
host of a disabled space is refused like an unknown token.

- ``GET|HEAD /api/v1/agent/{host}``: ``200`` when a deploy or rollback is due (with an
  ``ETag``), ``204`` when not, ``304`` when the host already has what is due. Answered from
  memory. ``HEAD`` answers the same status and headers, without the body. ``/api/v1/{host}``
  is the same poll (the pull-mode platform's address), for requests with an agent credential.
- ``GET /api/v1/agent/{host}/deploy``: the generated script for the due task (no ``HEAD``:
  fetching the script hands the task out).
- ``GET|HEAD /api/v1/agent/{host}/artifact/{release}``: the package (range requests, sha256
  header).
- ``POST /api/v1/agent/{host}/report``: a phase's exit code and output (form fields).

These are not in the OpenAPI document: user tokens never reach them (``docs/pull-mode.md``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

from ferryman.commands import agent_script
from ferryman.config.project import parse_project
from ferryman.db.models import AgentTask, Deploy, Project
from ferryman.db.session import Database
from ferryman.domain import overlap
from ferryman.domain.variables import substitute
from ferryman.errors import AuthenticationFailed, NotFound, PermissionDenied, ValidationError
from ferryman.services import agents

router = APIRouter(prefix="/agent", include_in_schema=False)

CREDENTIALS = "Authorization: Bearer TOKEN, or basic auth with the token as password"


def credentials(header: str) -> tuple[str | None, str]:
    """(basic-auth user name or None for a bearer token, token) from an ``Authorization``
    header; a missing or malformed one is refused (401) with what was expected."""
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return None, value
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthenticationFailed(f"malformed basic credentials ({CREDENTIALS})") from None
        user, colon, token = decoded.partition(":")
        if colon and token:
            return user, token
        raise AuthenticationFailed(f"basic credentials need a token as password ({CREDENTIALS})")
    if not header.strip():
        raise AuthenticationFailed(f"missing agent token ({CREDENTIALS})")
    raise AuthenticationFailed(f"malformed Authorization header ({CREDENTIALS})")


def _token(request: Request, host: str) -> str:
    user, token = credentials(request.headers.get("authorization", ""))
    if user not in (None, "", host):  # checked after the token: unknown tokens stay 401
        agents.authenticate(request.app.state.db, token, host)
        raise PermissionDenied(f"the basic-auth user {user!r} is not the host {host}")
    return token


def _headers_only(response: Response) -> Response:
    """What ``HEAD`` answers: the status and headers of the ``GET``, no body."""
    headers = dict(response.headers)
    return Response(status_code=response.status_code, headers=headers)


async def _host_space(request: Request, host: str, read_body: bool = False) -> int:
    """The host's space, from its token — checked before a byte of the body is read. A signed
    request is verified after (the body is bounded: 256 KiB, ``api/limits.py``)."""
    db: Database = request.app.state.db
    token = _token(request, host)
    space_id = agents.authenticate(db, token, host)  # cached: a poll stays a dict lookup
    body = await request.body() if read_body else b""
    signature = request.headers.get("x-ferryman-signature")
    if signature is not None:
        await asyncio.to_thread(
            agents.verify_signature,
            db,
            token,
            request.headers.get("x-ferryman-timestamp", ""),
            signature,
            request.method,
            request.url.path,
            body,
        )
    return space_id


@router.api_route("/{host}", methods=["GET", "HEAD"])
async def poll(host: str, request: Request) -> Response:
    db: Database = request.app.state.db
    space_id = await _host_space(request, host)
    due = agents.index.get(db, space_id, host)
    if due is None:
        return Response(status_code=204)
    if request.headers.get("if-none-match") == due.etag:
        return Response(status_code=304, headers={"ETag": due.etag})
    answer = JSONResponse(
        {"task": due.task_id, "deploy": due.deploy_id, "action": due.action},
        headers={"ETag": due.etag, "Cache-Control": "no-store"},
    )
    return _headers_only(answer) if request.method == "HEAD" else answer


class AgentOnlyRoute(APIRoute):
    """A route that matches only requests carrying an agent credential (a bearer ``fma_``
    token or basic auth): ``/api/v1/{host}`` must not swallow every unknown address, nor a
    user's request to one, which stay ``404``."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        header = dict(scope.get("headers") or []).get(b"authorization", b"").strip()
        scheme, _, value = header.partition(b" ")
        agent = scheme.lower() == b"basic" or (
            scheme.lower() == b"bearer" and value.strip().startswith(b"fma_")
        )
        return super().matches(scope) if agent else (Match.NONE, {})


# the pull-mode platform's own address for the poll; included after every other route
platform_router = APIRouter(include_in_schema=False, route_class=AgentOnlyRoute)
platform_router.add_api_route("/{host}", poll, methods=["GET", "HEAD"])


def _plan(request: Request, task: AgentTask, deploy: Deploy, project: Project) -> str:
    config = parse_project(deploy.config)
    env = config.environment(deploy.env)
    artifact = (deploy.options or {}).get("artifact", {})
    shared_dir = overlap.shared_dir(env.shared_dir, env.releases, config.project, deploy.env)
    release = task.release
    variables = {k: v for k, v in (deploy.variables or {}).items() if not str(v).startswith("enc:")}
    variables |= {
        "PROJECT": config.project,
        "ENV": deploy.env,
        "WEBROOT": env.webroot,
        "RELEASES": env.releases,
        "RELEASE": f"{env.releases}/{release}",
        "VERSION": release,
        "COMMIT": deploy.commit,
        "COMMIT_SHORT": deploy.commit[:7],
        "DEPLOY_ID": str(deploy.id),
        "DEPLOY_USER": deploy.requested_by_name,
        "HOST": task.host,
    }
    plan = agent_script.ScriptPlan(
        server=str(request.base_url).rstrip("/"),
        host=task.host,
        task_id=task.id,
        action=task.action,
        release=release,
        webroot=env.webroot,
        releases=env.releases,
        shared_dir=shared_dir,
        shared=env.shared,
        sha256=artifact.get("sha256", ""),
        commands=env.requires.commands,
        packages=env.requires.packages,
        stop=substitute(env.tasks.pre_release, "target"),  # Walle's {VERSION}: the dir
        start=substitute(env.tasks.post_release, "target"),
        checks=env.health_check,
        variables=variables,
        download_timeout=env.pull.download_timeout,
        task_timeout=env.task_timeout,
        claim=task.claimed_by,
    )
    if task.action == "rollback":
        return agent_script.rollback_script(plan)
    return agent_script.deploy_script(plan)


@router.get("/{host}/deploy")
async def deploy_script(host: str, request: Request) -> Response:
    db: Database = request.app.state.db
    space_id = await _host_space(request, host)
    found = await asyncio.to_thread(agents.take, db, space_id, host)
    if found is None:
        raise NotFound(f"nothing is due for {host}")
    task, deploy, project = found
    return PlainTextResponse(
        _plan(request, task, deploy, project),
        media_type="text/x-shellscript",
        headers={"Cache-Control": "no-store"},
    )


@router.api_route("/{host}/artifact/{release}", methods=["GET", "HEAD"])
async def artifact(host: str, release: str, request: Request) -> Response:
    db: Database = request.app.state.db
    space_id = await _host_space(request, host)
    deploy = await asyncio.to_thread(agents.artifact_of, db, space_id, host, release)
    info: dict[str, Any] = (deploy.options or {}).get("artifact", {})
    path = Path(info.get("path", ""))
    if not info or not await asyncio.to_thread(path.is_file):  # a slow disk blocks no poll
        raise NotFound(f"the artifact of {release} is gone")
    return FileResponse(
        path,
        media_type="application/gzip",
        headers={"X-Ferryman-Sha256": info["sha256"], "Cache-Control": "no-store"},
    )


@router.post("/{host}/report")
async def report(host: str, request: Request) -> Response:
    db: Database = request.app.state.db
    space_id = await _host_space(request, host, read_body=True)
    form = await request.form(max_part_size=agents.OUTPUT_LIMIT * 8)
    try:
        task_id = int(str(form.get("task", "")))
        exit_code = int(str(form.get("exit_code", "")))
    except ValueError:
        raise ValidationError("task and exit_code: numbers") from None
    output = form.get("output", "")
    text = output if isinstance(output, str) else (await output.read()).decode(errors="replace")
    await asyncio.to_thread(
        agents.report,
        db,
        space_id,
        host,
        task_id,
        str(form.get("phase", ""))[:32] or "agent",
        exit_code,
        text,
        str(form.get("status", "")),
        str(form.get("previous", "")),
        str(form.get("claim", "")),
    )
    return Response(status_code=204)
