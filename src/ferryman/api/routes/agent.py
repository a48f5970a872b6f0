"""Pull mode: what hosts call with their own token (``Authorization: Bearer``; optionally
signed with ``X-Ferryman-Timestamp`` and ``X-Ferryman-Signature``, keyed by the host's signing
key, not its token). A host reads and reports only its own deploys; a host of a disabled space
is refused like an unknown token.

- ``GET /api/v1/agent/{host}``: ``200`` when a deploy or rollback is due (with an ``ETag``),
  ``204`` when not, ``304`` when the host already has what is due. Answered from memory.
- ``GET /api/v1/agent/{host}/deploy``: the generated script for the due task.
- ``GET /api/v1/agent/{host}/artifact/{release}``: the package (range requests, sha256 header).
- ``POST /api/v1/agent/{host}/report``: a phase's exit code and output (form fields).

These are not in the OpenAPI document: user tokens never reach them (``docs/pull-mode.md``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response

from ferryman.commands import agent_script
from ferryman.config.project import parse_project
from ferryman.db.models import AgentTask, Deploy, Project
from ferryman.db.session import Database
from ferryman.errors import AuthenticationFailed, NotFound, ValidationError
from ferryman.services import agents

router = APIRouter(prefix="/agent", include_in_schema=False)


def _token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        raise AuthenticationFailed("missing agent token (Authorization: Bearer …)")
    return header[7:].strip()


async def _host_space(request: Request, host: str, read_body: bool = False) -> int:
    """The host's space, from its token — checked before a byte of the body is read. A signed
    request is verified after (the body is bounded: 256 KiB, ``api/limits.py``)."""
    db: Database = request.app.state.db
    token = _token(request)
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


@router.get("/{host}")
async def poll(host: str, request: Request) -> Response:
    db: Database = request.app.state.db
    space_id = await _host_space(request, host)
    due = agents.index.get(db, space_id, host)
    if due is None:
        return Response(status_code=204)
    if request.headers.get("if-none-match") == due.etag:
        return Response(status_code=304, headers={"ETag": due.etag})
    return JSONResponse(
        {"task": due.task_id, "deploy": due.deploy_id, "action": due.action},
        headers={"ETag": due.etag, "Cache-Control": "no-store"},
    )


def _plan(request: Request, task: AgentTask, deploy: Deploy, project: Project) -> str:
    config = parse_project(deploy.config)
    env = config.environment(deploy.env)
    artifact = (deploy.options or {}).get("artifact", {})
    shared_dir = env.shared_dir or str(Path(env.releases).parent / "shared")
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
        stop=env.tasks.pre_release,
        start=env.tasks.post_release,
        checks=env.health_check,
        variables=variables,
        download_timeout=env.pull.download_timeout,
        task_timeout=env.task_timeout,
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


@router.get("/{host}/artifact/{release}")
async def artifact(host: str, release: str, request: Request) -> Response:
    db: Database = request.app.state.db
    space_id = await _host_space(request, host)
    deploy = await asyncio.to_thread(agents.artifact_of, db, space_id, host, release)
    info: dict[str, Any] = (deploy.options or {}).get("artifact", {})
    path = Path(info.get("path", ""))
    if not info or not path.is_file():
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
    )
    return Response(status_code=204)
