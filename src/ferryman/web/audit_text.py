"""The audit log as sentences: what each action did, in words (``web.i18n`` translates them),
and a link to what its target names."""

from __future__ import annotations

import re
from urllib.parse import quote

from ferryman.web.i18n import N_

VERBS = {
    "space.create": N_("created the space"),
    "space.update": N_("changed the space"),
    "space.limits": N_("changed the limits of"),
    "member.set": N_("set the role of"),
    "member.remove": N_("removed from the space"),
    "project_member.set": N_("set the project role of"),
    "project_member.remove": N_("removed the project role of"),
    "environment.create": N_("created the environment"),
    "environment.update": N_("changed the environment"),
    "environment.delete": N_("deleted the environment"),
    "server.create": N_("added the server"),
    "server.update": N_("changed the server"),
    "server.delete": N_("removed the server"),
    "server.join": N_("made a server serve"),
    "server.trust": N_("pinned the host key of"),
    "repo_host.trust": N_("pinned a repository host key in"),
    "project.create": N_("created the project"),
    "project.update": N_("changed the project"),
    "project.copy": N_("copied the project"),
    "project.detect": N_("ran detection on"),
    "secret.create": N_("set the secret"),
    "secret.update": N_("changed the secret"),
    "secret.delete": N_("deleted the secret"),
    "secret.reveal": N_("read the secret"),
    "config.create": N_("added the config file"),
    "config.update": N_("changed the config file"),
    "config.delete": N_("deleted the config file"),
    "config.override": N_("overrode the config file"),
    "config.override_delete": N_("removed an override of"),
    "deploy.request": N_("asked for a deploy of"),
    "rollback.request": N_("asked for a rollback of"),
    "config.request": N_("asked for a config-only deploy of"),
    "deploy.success": N_("finished"),
    "deploy.failed": N_("recorded the failure of"),
    "deploy.cancelled": N_("recorded the cancellation of"),
    "rollback.success": N_("finished the rollback"),
    "rollback.failed": N_("recorded the failed rollback"),
    "config.success": N_("finished the config-only deploy"),
    "deploy.direct": N_("deployed"),
    "deploy.rollback": N_("rolled back"),
    "deploy.emergency": N_("made an emergency rollback of"),
    "deploy.retry": N_("retried"),
    "deploy.cancel": N_("stopped"),
    "deploy.cancel_any": N_("stopped"),
    "ticket.create": N_("created"),
    "ticket.submit": N_("submitted"),
    "ticket.approve": N_("approved"),
    "ticket.reject": N_("rejected"),
    "ticket.deploy": N_("started the deploy of"),
    "ticket.cancel": N_("cancelled"),
    "ticket.rollback": N_("rolled back with"),
    "rollout.continue": N_("continued the rollout of"),
    "rollout.abort": N_("aborted the rollout of"),
    "notify.create": N_("added the notification channel"),
    "notify.update": N_("changed the notification channel"),
    "notify.delete": N_("deleted the notification channel"),
    "notify.test": N_("tested the notification channel"),
    "user.create": N_("created the user"),
    "user.update": N_("changed the user"),
    "token.create": N_("created a token"),
    "token.revoke": N_("revoked a token"),
    "agent.register": N_("issued a pull-mode token for"),
    "agent.revoke": N_("revoked the pull-mode token of"),
    "hook.receive": N_("received a webhook for"),
    "hook.secret": N_("made a new webhook secret for"),
    "group.create": N_("created the group"),
    "group.update": N_("changed the group"),
    "group.delete": N_("deleted the group"),
    "group.member_add": N_("added a member to the group"),
    "group.member_remove": N_("removed a member from the group"),
    "space.group_set": N_("gave a group a role in"),
    "space.group_remove": N_("removed a group from"),
    "project.delete": N_("deleted the project"),
    "release_request.update": N_("changed the release request"),
    "rollback.force_migrations": N_("forced a rollback across irreversible migrations of"),
    "summary.set": N_("set the scheduled summary of"),
    "summary.queued": N_("sent the scheduled summary of"),
    "summary.skipped": N_("skipped the scheduled summary of"),
    "user.language": N_("chose the language of"),
    "user.time_zone": N_("chose the time zone of"),
    "user.login": N_("signed in as"),
    "user.logout": N_("signed out as"),
    "user.password": N_("changed the password of"),
    "watch.failed": N_("saw the post-deploy watch fail for"),
    "retention.prune": N_("pruned old deploy logs on"),
}

_PARTS = re.compile(r"(?P<kind>[a-z_]+):(?P<name>[^/]+)")


def link(target: str, space: str) -> str:
    """The page of what ``target`` names (``ticket:5``, ``project:site/…``,
    ``space:acme/server:web-1``), or ``""``."""
    parts = {m["kind"]: m["name"] for m in _PARTS.finditer(target)}
    base = f"/s/{quote(space)}"
    if "ticket" in parts and parts["ticket"].isdigit():
        return f"{base}/tickets/{parts['ticket']}"
    if "deploy" in parts and parts["deploy"].isdigit():
        return f"{base}/deploys/{parts['deploy']}"
    if "project" in parts:
        project = quote(parts["project"])
        if "secret" in parts or "user" in parts:
            return f"{base}/projects/{project}/access"
        return f"{base}/projects/{project}"
    if "server" in parts:
        return f"{base}/servers"
    if "env" in parts:
        return f"{base}/environments"
    if "space" in parts:
        return f"{base}/members" if "user" in parts else f"/s/{quote(parts['space'])}/"
    return ""
