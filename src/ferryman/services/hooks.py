"""Git webhooks in: GitLab, Gitea (and Gogs) and GitHub, each verified its own way with the
project's secret. A push to a branch an environment triggers on, or a new tag, becomes a ticket
for that environment; where the environment says ``auto_deploy`` (and needs no approval) its
deploy is queued at once.

Refused with the same ``401`` and the same words, so the endpoint tells nobody which projects
exist: an unknown project, a project without a secret, a project of a disabled space, a
missing or bad signature (:data:`REFUSED`). The headers are checked before the body is read
(:func:`target`), the body only then (bounded by ``api/limits.py``). A delivery seen before is
refused and creates nothing: by its delivery id, and by the digest of its body per provider and
project, so a captured delivery sent again under a new delivery id is still a replay."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from ferryman.config.project import ProjectConfig
from ferryman.config.settings import Settings
from ferryman.db.models import HookDelivery, Space
from ferryman.db.session import Database
from ferryman.domain.statuses import TicketStatus
from ferryman.errors import (
    AuthenticationFailed,
    Conflict,
    FerrymanError,
    NotFound,
    ValidationError,
)
from ferryman.services import projects, tickets
from ferryman.services.audit import SYSTEM, Actor, record

log = logging.getLogger(__name__)
PROVIDERS = ("gitlab", "gitea", "github")
SIGNATURE_HEADERS = {
    "gitlab": ("x-gitlab-token",),
    "gitea": ("x-gitea-signature", "x-gogs-signature"),
    "github": ("x-hub-signature-256",),
}
REFUSED = "webhook refused: unknown project, no webhook secret, or a bad signature"


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
    before: str = ""  # the ref's commit before the push (all zeros for a new ref)


def _header(headers: dict[str, str], name: str) -> str:
    return headers.get(name.lower(), "")


def _sent(provider: str, headers: dict[str, str]) -> str:
    """What the delivery offers as proof: GitLab's token, or the HMAC-SHA256 signature."""
    return next((headers[n] for n in SIGNATURE_HEADERS[provider] if headers.get(n)), "")


def _check(provider: str, headers: dict[str, str], secret: str, mac: Any) -> None:
    """Compare the proof with the secret (GitLab) or with ``mac`` of the body (the others)."""
    if provider == "gitlab":
        wanted = secret
    else:
        wanted = ("sha256=" if provider == "github" else "") + str(mac.hexdigest())
    sent = _sent(provider, headers)
    if not sent or not hmac.compare_digest(sent.encode(), wanted.encode()):
        raise AuthenticationFailed(REFUSED)


def verify(provider: str, headers: dict[str, str], body: bytes, secret: str) -> None:
    _check(provider, headers, secret, hmac.new(secret.encode(), body, hashlib.sha256))


@dataclass(frozen=True)
class Target:
    """The project a delivery is for, found from the URL and headers alone."""

    provider: str
    project_id: int
    space_id: int
    name: str
    secret: str
    config: ProjectConfig


def target(db: Database, provider: str, project_ref: str, headers: dict[str, str]) -> Target:
    """Before the body is read: the provider is known, the project exists in an active space
    and has a secret, and the delivery carries its provider's signature header. Anything
    else is :data:`REFUSED`, word for word the same as a bad signature."""
    if provider not in PROVIDERS:
        raise NotFound(f"no webhook provider {provider!r} (gitlab, gitea or github)")
    try:
        found, config = projects.project_config(db, SYSTEM, project_ref, "project.read")
        with db.read() as s:
            space = s.get(Space, found.space_id)
            active = space is not None and space.is_active
    except FerrymanError:  # unknown, or a name several spaces use
        raise AuthenticationFailed(REFUSED) from None
    if not active or not found.hook_secret or not _sent(provider, headers):
        raise AuthenticationFailed(REFUSED)
    secret = db.box.open(found.hook_secret)
    return Target(provider, found.id, found.space_id, found.name, secret, config)


SPOOL = 256 * 1024  # of a body not yet verified, at most this much is held in memory


async def read_signed(
    found: Target, headers: dict[str, str], chunks: AsyncIterator[bytes]
) -> bytes:
    """The body, read only as far as authentication allows: GitLab's token is checked before
    a byte is read; a Gitea or GitHub signature is computed while reading, the body spooled
    to disk past :data:`SPOOL`, so a forged delivery never holds its size in memory."""
    if found.provider == "gitlab":
        verify("gitlab", headers, b"", found.secret)
        return b"".join([chunk async for chunk in chunks])
    mac = hmac.new(found.secret.encode(), digestmod=hashlib.sha256)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL) as spool:
        async for chunk in chunks:
            mac.update(chunk)
            spool.write(chunk)
        _check(found.provider, headers, found.secret, mac)
        spool.seek(0)
        return spool.read()


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
    )
    commit = str(data.get("checkout_sha") or data.get("after") or data.get("sha") or "")
    before = str(data.get("before") or "")[:64]
    if ref.startswith("refs/tags/"):
        return Push(tag=ref[len("refs/tags/") :], commit=commit, delivery=delivery, before=before)
    if ref.startswith("refs/heads/"):
        return Push(
            branch=ref[len("refs/heads/") :], commit=commit, delivery=delivery, before=before
        )
    return Push(delivery=delivery)


async def receive(
    db: Database,
    settings: Settings,
    found: Target,
    headers: dict[str, str],
    body: bytes,
) -> dict[str, Any]:
    """Verify, refuse replays, then make the tickets (and deploys) the push asks for."""
    import asyncio

    provider, config = found.provider, found.config
    verify(provider, headers, body, found.secret)
    push = parse(provider, headers, body)
    digests = [f"sha256:{found.project_id}:{hashlib.sha256(body).hexdigest()}"]
    if push.commit and (push.branch or push.tag):
        # what the push *means*, whatever its bytes: GitLab's proof is a token, not a
        # signature over the body, so a reformatted body would otherwise pass as new
        meaning = f"{found.project_id}:{push.branch}:{push.tag}:{push.before}:{push.commit}"
        digests.append(f"push:{hashlib.sha256(meaning.encode()).hexdigest()}")
    delivery = push.delivery or digests[0]
    await asyncio.to_thread(_once, db, provider, delivery, digests)
    actor = Actor(id=None, username=f"{provider}-webhook", is_superuser=True)
    made: list[dict[str, Any]] = []
    for env_name, env in config.environments.items():
        triggered = (push.tag and env.triggers.tags) or (
            push.branch and push.branch in env.triggers.branches
        )
        if not triggered:
            continue
        ref = push.tag or push.branch
        try:
            ticket = await tickets.create_ticket(
                db,
                settings,
                actor,
                found.project_id,
                env_name,
                ref,
                title=f"{provider}: {'tag' if push.tag else 'push to'} {ref}",
                description=f"commit {push.commit}" if push.commit else "",
            )
        except Conflict as exc:
            if not env.requires_passed:
                raise
            # promotion: the commit has not passed that environment yet; the push still
            # makes the tickets of the others (it reaches this one by `ferryman promote`)
            log.info("webhook: no %s ticket: %s", env_name, exc.message)
            continue
        if env.auto_deploy and ticket["status"] == TicketStatus.APPROVED:
            try:
                ticket = await asyncio.to_thread(tickets.deploy_ticket, db, actor, ticket["id"])
            except FerrymanError as exc:  # e.g. another deploy is running: the ticket waits
                ticket["deploy_error"] = exc.message
        made.append(ticket)
    await asyncio.to_thread(_audit, db, found.project_id, found.space_id, provider, push, len(made))
    return {"delivery": delivery, "tickets": made}


ANY_PROVIDER = "*"  # digests are recorded once for every endpoint: GitHub and Gitea sign
# the same way with the same secret, so a body accepted by one must not pass the other


def _once(db: Database, provider: str, delivery: str, digests: list[str]) -> None:
    """Record the delivery id (per provider) and the digests of the body and of what the
    push means (per project, for every provider) together: any seen before is a replay."""
    rows = [(provider, delivery[:128])] + [(ANY_PROVIDER, d[:128]) for d in digests]
    try:
        with db.transaction() as s:
            for who, key in dict.fromkeys(rows):
                s.add(HookDelivery(provider=who, delivery=key))
                s.flush()
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
