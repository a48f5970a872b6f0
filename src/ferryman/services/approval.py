"""Approval follows the servers: a deploy that touches any server of an environment that needs
approval needs an approved ticket, whatever project or environment name it comes through; and
an approval covers exactly the configuration that was approved (``domain.approval``)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from ferryman.config.project import ProjectConfig
from ferryman.config.settings import value_of
from ferryman.db.models import Environment, Project, Server, Ticket
from ferryman.domain import approval, validate
from ferryman.domain.permissions import Role
from ferryman.errors import OwnTicket, ValidationError
from ferryman.services.audit import Actor
from ferryman.services.authz import space_role
from ferryman.services.config_files import config_views

SELF_APPROVAL = "FERRYMAN_SELF_APPROVAL"


def approving_environments(
    s: Session, project: Project, config: ProjectConfig, env: str, hosts: Sequence[str] | None
) -> list[str]:
    """The environments of the space whose approval a deploy of ``env`` to ``hosts`` (None:
    every host of the environment) needs: ``env`` itself if it requires approval, and every
    approval-requiring environment any of the touched servers serves."""
    flags = {
        e.name: e.requires_approval
        for e in s.scalars(select(Environment).where(Environment.space_id == project.space_id))
    }
    keys = set(hosts) if hosts else {h.key for h in config.environment(env).hosts}
    needed = {env} if flags.get(env) else set()
    for server in s.scalars(select(Server).where(Server.space_id == project.space_id)):
        if validate.HostSpec(server.address, server.port).key in keys:
            needed |= {name for name in server.environments or [] if flags.get(name)}
    return sorted(needed)


def describe(needed: list[str], env: str) -> str:
    others = [n for n in needed if n != env]
    if not others:
        return f"{env} requires approval"
    return (
        f"{env} touches servers of {', '.join(others)}, which require"
        f"{'s' if len(others) == 1 else ''} approval"
    )


def ticket_digest(s: Session, project: Project, config: ProjectConfig, ticket: Ticket) -> str:
    """The digest of what ``ticket`` would run now (``config``: the effective config)."""
    env = config.environment(ticket.env)
    hosts = ticket.hosts or [h.key for h in env.hosts]
    return approval.digest(
        kind=ticket.kind,
        commit=ticket.commit,
        target_release=ticket.target_release,
        hosts=[str(h) for h in env.hosts if h.key in set(hosts)],
        repo=config.repo,
        vcs=config.vcs_kind,
        # how long logs are kept decides nothing a ticket runs (and a new key must not send
        # every approved ticket back to review)
        env_config=env.model_dump(mode="json", exclude={"log_retention"}),
        config_versions={v["path"]: v["version"] for v in config_views(s, project, ticket.env)},
        variables=_variables(s, project, ticket.env),
    )


def _variables(s: Session, project: Project, env: str) -> dict[str, str]:
    from ferryman.services.secrets import sealed_for

    row = s.scalar(
        select(Environment).where(Environment.space_id == project.space_id, Environment.name == env)
    )
    values = {f"env:{k}": v for k, v in (row.variables if row else {}).items()}
    return values | {f"secret:{k}": v for k, v in sealed_for(s, project.id, env).items()}


def self_approval_mode() -> str:
    """``FERRYMAN_SELF_APPROVAL`` of this server: ``off`` or ``owners``."""
    mode: str = value_of(os.environ, SELF_APPROVAL)
    return mode


def check_self_approval(s: Session, actor: Actor, ticket: Ticket, reason: str) -> None:
    """``actor`` created ``ticket`` and wants to approve it. Allowed only where the server
    lets owners do so (``FERRYMAN_SELF_APPROVAL=owners``: a team of one), to an owner of the
    ticket's space or a superuser, with a written reason; refused otherwise, saying how a
    team of one gets going."""
    what = f"you created ticket #{ticket.id}; another master must approve it"
    if self_approval_mode() != "owners":
        raise OwnTicket(
            f"{what}. Alone on this server? Add a second master "
            "(`ferryman space add-member SPACE USER --role master`), turn approval off for "
            f"the environment (`ferryman env set {ticket.env} --no-approval`), or let owners "
            f"approve their own tickets with a written reason ({SELF_APPROVAL}=owners in the "
            "server's environment, then `ferryman ticket approve "
            f'{ticket.id} --comment "why"`)'
        )
    if not actor.is_superuser and space_role(s, actor, ticket.space_id) != Role.owner:
        raise OwnTicket(f"{what} (only an owner of the space may approve their own tickets)")
    if not reason.strip():
        raise ValidationError(
            f"comment: approving your own ticket #{ticket.id} needs a written reason "
            '(`--comment "why"`); it is kept in the audit log and sent with the approval'
        )
