"""The permissions table: which role may do what. The one source for the server's checks, the
table in ``docs/permissions.md`` (``python -m ferryman.domain.permissions`` prints it) and the
authorization matrix test.

Roles, GitLab-like: ``super`` is global; inside a space a member is ``owner``, ``master``,
``developer`` or ``reporter`` (each includes the rights of those after it), optionally overridden
for one project. Some actions need no space: ``public`` (no login), ``user`` (any signed-in user,
acting on their own things) and ``super``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.IntEnum):
    reporter = 10
    developer = 20
    master = 30
    owner = 40

    @classmethod
    def parse(cls, value: str) -> Role:
        try:
            return cls[value]
        except KeyError:
            names = ", ".join(r.name for r in cls)
            from ferryman.errors import ValidationError

            raise ValidationError(f"not a role: {value!r} (one of {names})") from None


# Who an action needs when it is not a space role.
PUBLIC = "public"
USER = "user"
SUPER = "super"


@dataclass(frozen=True)
class Rule:
    needs: Role | str  # a Role inside the space, or PUBLIC / USER / SUPER
    writes: bool
    description: str

    def __post_init__(self) -> None:
        if not isinstance(self.needs, Role) and self.needs not in (PUBLIC, USER, SUPER):
            from ferryman.errors import InternalError

            raise InternalError(f"a rule needs a role, {PUBLIC}, {USER} or {SUPER}: {self.needs!r}")

    @property
    def needs_name(self) -> str:
        return self.needs.name if isinstance(self.needs, Role) else self.needs

    @property
    def space_role(self) -> Role | None:
        """The role the action needs inside a space; None when it needs none (public, user
        or super)."""
        return self.needs if isinstance(self.needs, Role) else None


R, D, M, OWN = Role.reporter, Role.developer, Role.master, Role.owner

ACTIONS: dict[str, Rule] = {
    "auth.login": Rule(PUBLIC, False, "sign in: a token, or a browser session"),
    "auth.logout": Rule(USER, True, "end your browser session"),
    "me.read": Rule(USER, False, "see who you are, the server's SSH key"),
    "me.password": Rule(USER, True, "change your own password"),
    "me.preferences": Rule(USER, True, "change your own preferences (web UI language)"),
    "token.read": Rule(USER, False, "list your own API tokens"),
    "token.manage": Rule(USER, True, "create or revoke your own API tokens"),
    "user.list": Rule(USER, False, "list user names (to add members)"),
    "user.manage": Rule(SUPER, True, "create users, disable/enable, reset passwords"),
    "space.list": Rule(USER, False, "list the spaces you belong to"),
    "space.create": Rule(SUPER, True, "create a space"),
    "space.read": Rule(R, False, "see a space"),
    "space.manage": Rule(OWN, True, "rename or disable a space"),
    "space.limit": Rule(
        OWN, True, "lower the space's limits (running deploys, task timeout); raising is super"
    ),
    "space.policy": Rule(
        SUPER, True, "raise a space's limits; allow file:// and local-path repositories"
    ),
    "member.read": Rule(R, False, "list members and project role overrides"),
    "member.manage": Rule(OWN, True, "add, change or remove members and project overrides"),
    "group.read": Rule(
        USER, False, "list user groups, their spaces and the members you share a space with"
    ),
    "group.manage": Rule(SUPER, True, "create or delete user groups; add or remove their members"),
    "environment.read": Rule(R, False, "list environments and their variables"),
    "environment.manage": Rule(M, True, "create, change or delete environments"),
    "server.read": Rule(R, False, "list servers"),
    "server.manage": Rule(M, True, "create, change or delete servers"),
    "server.trust": Rule(M, True, "pin the SSH host key of a server or a repository host"),
    "project.read": Rule(R, False, "see projects, their config, releases and repository refs"),
    "project.create": Rule(M, True, "create a project"),
    "project.manage": Rule(
        M, True, "change, copy or delete projects (what runs: hooks, hosts, repository, paths)"
    ),
    "project.detect": Rule(D, True, "run config detection against the hosts and repository"),
    "secret.manage": Rule(M, True, "set or delete a project's secret variables"),
    "secret.reveal": Rule(M, True, "read a secret's value (audited); others see only names"),
    "config.read": Rule(
        D, False, "see config files: templates, overrides, history and per-host previews"
    ),
    "config.manage": Rule(M, True, "set or delete config files and their overrides"),
    "deploy.read": Rule(R, False, "see deploys, their logs and per-host steps"),
    "deploy.direct": Rule(D, True, "deploy without a ticket where no approval is required"),
    "deploy.rollback": Rule(M, True, "roll an environment back (also a gray release, now)"),
    "deploy.emergency": Rule(M, True, "emergency rollback: switch every host at once, no hooks"),
    "deploy.force_migrations": Rule(
        M, True, "roll back across irreversible database migrations, with a reason (audited)"
    ),
    "rollout.continue": Rule(D, True, "continue a paused gray release"),
    "rollout.abort": Rule(D, True, "abort a gray release (its on_failure applies)"),
    "deploy.cancel": Rule(D, True, "stop a queued or running deploy you asked for"),
    "deploy.cancel_any": Rule(M, True, "stop anyone's queued or running deploy"),
    "ticket.read": Rule(R, False, "see tickets and their preview"),
    "ticket.create": Rule(D, True, "create and submit tickets; cancel your own"),
    "ticket.approve": Rule(M, True, "approve or reject others' tickets; cancel any"),
    "ticket.deploy": Rule(D, True, "start an approved ticket"),
    "ticket.rollback": Rule(M, True, "roll back what a ticket deployed"),
    "audit.read": Rule(M, False, "read the audit log of a space"),
    "notify.read": Rule(M, False, "see a space's notification channels and their deliveries"),
    "notify.manage": Rule(M, True, "add, change, test or remove notification channels"),
    "stats.read": Rule(R, False, "read deploy statistics"),
}


def rule(action: str) -> Rule:
    return ACTIONS[action]


def role_allows(role: Role | None, action: str) -> bool:
    """Whether a member with ``role`` in the space may do ``action`` (super is checked apart)."""
    spec = ACTIONS[action]
    if spec.needs in (PUBLIC, USER):
        return True
    needs = spec.space_role  # None: super
    if needs is None or role is None:
        return False
    return role >= needs


def markdown_table() -> str:
    """The table of ``docs/permissions.md``: one row per action, one column per role."""
    columns = ["super", *[r.name for r in sorted(Role, reverse=True)]]
    lines = [
        "| action | " + " | ".join(columns) + " | what it allows |",
        "|---|" + "---|" * len(columns) + "---|",
    ]
    for action, spec in ACTIONS.items():
        cells = []
        for column in columns:
            if column == "super":
                cells.append("✓")
            else:
                cells.append("✓" if role_allows(Role[column], action) else "")
        needs = spec.needs_name
        note = spec.description + (f" ({needs})" if needs in (PUBLIC, USER, SUPER) else "")
        lines.append(f"| `{action}` | " + " | ".join(cells) + f" | {note} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
