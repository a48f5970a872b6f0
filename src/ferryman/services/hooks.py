"""Git webhooks in: GitLab, Gitea (and Gogs) and GitHub, each verified its own way with the
project's secret. A push to a branch an environment triggers on, or a new tag, becomes a ticket
for that environment; where the environment says ``auto_deploy`` (and needs no approval) its
deploy is queued at once. A delivery seen before, or a bad signature, is refused (401) and
creates nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from ferryman.config.settings import Settings
from ferryman.db.models import HookDelivery
from ferryman.db.session import Database
from ferryman.errors import AuthenticationFailed, FerrymanError, NotFound, ValidationError
from ferryman.services import projects, tickets
from ferryman.services.audit import SYSTEM, Actor, record

PROVIDERS = ("gitlab", "gitea", "github")


def set_secret(db: Database, actor: Actor, project_ref: int | str, secret: str = "") -> str:
    """Set (or generate) the project's webhook secret; returned once, stored sealed."""
    value = secret or secrets.token_urlsafe(32)
    if len(value) < 16:
        raise ValidationError("a webhook secret has at least 16 characters")
    with db.transaction() as s:
        project = projects.find_project(s, actor, project_ref, "project.manage")
        project.hook_secret = db.box.seal(value)
        record(
            s,
            actor,
            "hook.secret",
            f"project:{project.name}",
            space_id=project.space_id,
            project_id=project.id,
        )
    return value


@dataclass(frozen=True)
class Push:
    branch: str = ""
    tag: str = ""
    commit: str = ""
    delivery: str = ""


def _header(headers: dict[str, str], name: str) -> str:
    return headers.get(name.lower(), "")


def verify(provider: str, headers: dict[str, str], body: bytes, secret: str) -> None:
    if provider == "gitlab":
        sent = _header(headers, "X-Gitlab-Token")
        if not sent or not hmac.compare_digest(sent, secret):
            raise AuthenticationFailed("bad X-Gitlab-Token")
        return
    if provider == "gitea":
        sent = _header(headers, "X-Gitea-Signature") or _header(headers, "X-Gogs-Signature")
        wanted = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    else:
        sent = _header(headers, "X-Hub-Signature-256")
        wanted = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not sent or not hmac.compare_digest(sent, wanted):
        raise AuthenticationFailed(f"bad {provider} signature")


def parse(provider: str, headers: dict[str, str], body: bytes) -> Push:
    try:
        data: dict[str, Any] = json.loads(body)
    except ValueError:
        raise ValidationError("the webhook body is not JSON") from None
    ref = str(data.get("ref", ""))
    if provider == "gitea" and _header(headers, "X-Gitea-Event") == "create":
        ref = ("refs/tags/" if data.get("ref_type") == "tag" else "refs/heads/") + ref
    delivery = (
        _header(headers, "X-Gitlab-Event-UUID")
        or _header(headers, "X-Gitea-Delivery")
        or _header(headers, "X-Gogs-Delivery")
        or _header(headers, "X-GitHub-Delivery")
        or hashlib.sha256(body).hexdigest()
    )
    commit = str(data.get("checkout_sha") or data.get("after") or data.get("sha") or "")
    if ref.startswith("refs/tags/"):
        return Push(tag=ref[len("refs/tags/") :], commit=commit, delivery=delivery)
    if ref.startswith("refs/heads/"):
        return Push(branch=ref[len("refs/heads/") :], commit=commit, delivery=delivery)
    return Push(delivery=delivery)


async def receive(
    db: Database,
    settings: Settings,
    provider: str,
    project_ref: str,
    headers: dict[str, str],
    body: bytes,
) -> dict[str, Any]:
    """Verify, refuse replays, then make the tickets (and deploys) the push asks for."""
    import asyncio

    if provider not in PROVIDERS:
        raise NotFound(f"no webhook provider {provider!r} (gitlab, gitea or github)")
    found, config = await asyncio.to_thread(
        projects.project_config, db, SYSTEM, project_ref, "project.read"
    )
    if not found.hook_secret:
        raise AuthenticationFailed(f"{found.name} has no webhook secret")
    verify(provider, headers, body, db.box.open(found.hook_secret))
    push = parse(provider, headers, body)
    await asyncio.to_thread(_once, db, provider, push.delivery)
    actor = Actor(id=None, username=f"{provider}-webhook", is_superuser=True)
    made: list[dict[str, Any]] = []
    for env_name, env in config.environments.items():
        triggered = (push.tag and env.triggers.tags) or (
            push.branch and push.branch in env.triggers.branches
        )
        if not triggered:
            continue
        ref = push.tag or push.branch
        ticket = await tickets.create_ticket(
            db,
            settings,
            actor,
            found.id,
            env_name,
            ref,
            title=f"{provider}: {'tag' if push.tag else 'push to'} {ref}",
            description=f"commit {push.commit}" if push.commit else "",
        )
        if env.auto_deploy and ticket["status"] == "approved":
            try:
                ticket = await asyncio.to_thread(tickets.deploy_ticket, db, actor, ticket["id"])
            except FerrymanError as exc:  # e.g. another deploy is running: the ticket waits
                ticket["deploy_error"] = exc.message
        made.append(ticket)
    await asyncio.to_thread(_audit, db, found.id, found.space_id, provider, push, len(made))
    return {"delivery": push.delivery, "tickets": made}


def _once(db: Database, provider: str, delivery: str) -> None:
    try:
        with db.transaction() as s:
            s.add(HookDelivery(provider=provider, delivery=delivery[:128]))
    except IntegrityError:
        raise AuthenticationFailed(f"{provider} delivery {delivery} was already received") from None


def _audit(
    db: Database, project_id: int, space_id: int, provider: str, push: Push, made: int
) -> None:
    with db.transaction() as s:
        record(
            s,
            Actor(id=None, username=f"{provider}-webhook", is_superuser=True),
            "hook.receive",
            f"project:{project_id}",
            space_id=space_id,
            project_id=project_id,
            branch=push.branch,
            tag=push.tag,
            commit=push.commit,
            tickets=made,
        )
