"""A small world for authorization and audit tests: two spaces, one user per role, a project on
a local git repository, and one request recipe per API route.

Every recipe builds what it needs afresh (a new server, a new ticket, a new project...) so the
order in which roles call a route never changes what the next one sees.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferryman.bootstrap import ensure_ssh_key, prepare_home
from ferryman.config.project import parse_project
from ferryman.config.settings import Settings, load_settings
from ferryman.db.session import Database
from ferryman.services import (
    deploy_records,
    deploys,
    inventory,
    projects,
    queue,
    spaces,
    tickets,
    users,
)
from ferryman.services.audit import SYSTEM, Actor
from ferryman.testing.databases import SqliteState
from tests.api import release_and_group_recipes
from tests.helpers import allow_local_repos

PASSWORD = "correct horse battery"
ROLES = ("anonymous", "other", "reporter", "developer", "master", "owner", "super")
SPACE = "acme"

_ids = itertools.count(1)


def fresh(prefix: str) -> str:
    return f"{prefix}{next(_ids)}"


@dataclass
class World:
    settings: Settings
    db: Database
    repo_url: str
    actors: dict[str, Actor] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    project: str = "site"
    project_id: int = 0
    first: SqliteState | None = None  # the rows build_world left (SQLite worlds)

    def restore(self) -> None:
        """Put back the rows ``build_world`` left, on a SQLite world (on the other backends
        nothing is kept and the world keeps what tests add): a module's tests then share the
        world and the app on it, and each test sees no row an earlier one made — nor pays for
        them (a new project is checked against every project there is)."""
        if self.first is not None:
            self.first.restore()

    # --- building blocks ----------------------------------------------------------------

    def config(self, name: str, space: str = SPACE) -> dict[str, Any]:
        env = {
            "hosts": ["127.0.0.1:1"],
            "user": "root",
            "webroot": f"/srv/www/{name}",
            "releases": f"/srv/releases/{name}",
            "connect_timeout": 2,
        }
        # Staging has its own server: one serving production would need its approval.
        staging = {**env, "hosts": ["127.0.0.2:1"]}
        return {
            "project": name,
            "space": space,
            "repo": self.repo_url,
            "environments": {"production": env, "staging": staging},
        }

    def new_project(self) -> str:
        name = fresh("proj")
        project, _ = projects.apply_project(self.db, SYSTEM, parse_project(self.config(name)))
        return str(project.id)

    def new_ticket(self, by: str = "author", env: str = "production", draft: bool = False) -> int:
        creator = self.actors[by] if by in self.actors else self.actors["author"]
        data = asyncio.run(
            tickets.create_ticket(
                self.db,
                self.settings,
                creator,
                self.new_project(),
                env,
                "v1",
                title="ship it",
                draft=draft,
            )
        )
        return int(data["id"])

    def creator_for(self, role: str) -> str:
        """Tickets a role acts on as its own: developers and up create them, others can't."""
        return role if role in ("developer", "master", "owner", "super") else "author"

    def deployed_ticket(self) -> int:
        """A staging ticket whose deploy finished, hosts recorded on a release."""
        ticket_id = self.new_ticket(env="staging")
        data = tickets.deploy_ticket(self.db, SYSTEM, ticket_id)
        deploy, project = deploys.load(self.db, data["deploy_id"])
        deploy_records.set_hosts(
            self.db,
            deploy.id,
            {
                "127.0.0.2:1": {
                    "status": "success",
                    "previous_release": "20260101-000000_v0_aaaaaaa",
                }
            },
        )
        deploy_records.set_live(self.db, project.id, "staging", deploy.id, {"127.0.0.2:1": "rel"})
        assert queue.claim_next(self.db, "matrix") is not None
        deploys.finish(self.db, deploy.id, "success", None)
        return ticket_id

    def succeeded_deploy(self) -> int:
        """A staging deploy of a commit that succeeded (what a promotion starts from)."""
        ticket = tickets.get_ticket(self.db, SYSTEM, self.deployed_ticket())
        return int(ticket["deploy_id"])

    def live_project(self) -> str:
        """A project whose staging hosts have a live release (so rollbacks can be asked)."""
        ref = self.new_project()
        with self.db.transaction() as s:  # a release no deploy of this database made
            deploy_records.set_live_in(s, int(ref), "staging", None, {"127.0.0.2:1": "rel"})
        return ref

    def queued_deploy(self, by: str = "") -> int:
        actor = self.actors.get(by, SYSTEM)
        return deploys.request_deploy(self.db, actor, self.new_project(), "staging", "v1").id

    def paused_rollout(self) -> int:
        """A gray release paused after its canary (as a worker leaves it)."""
        from ferryman.db.models import Deploy
        from ferryman.domain.rollout import Rollout

        deploy_id = self.queued_deploy()
        state = Rollout(batches=[["127.0.0.1:1"], ["127.0.0.2:1"]], next_batch=1, state="paused")
        with self.db.transaction() as s:
            deploy = s.get(Deploy, deploy_id)
            assert deploy is not None, f"no deploy #{deploy_id}"
            deploy.status, deploy.rollout = "paused", state.to_dict()
        return deploy_id

    def failed_deploy(self) -> int:
        from ferryman.db.models import Deploy

        deploy_id = self.queued_deploy()
        with self.db.transaction() as s:  # as a worker would have: it ran, it failed
            deploy = s.get(Deploy, deploy_id)
            assert deploy is not None, f"no deploy #{deploy_id}"
            deploy.status = "running"
        deploys.finish(self.db, deploy_id, "failed", {"code": "x", "message": "broken"})
        return deploy_id

    def new_secret(self) -> str:
        from ferryman.services import secrets

        name = fresh("SECRET_")
        secrets.set_secret(self.db, SYSTEM, self.project_id, "staging", name, "s3cret-value")
        return name

    def new_config(self) -> str:
        from ferryman.services import config_files

        path = f"conf/{fresh('app')}.env"
        config_files.set_file(
            self.db, SYSTEM, self.project_id, "staging", path, "HOST=${HOST}\nPORT=80\n"
        )
        config_files.set_override(
            self.db, SYSTEM, self.project_id, "staging", path, "label:job-node", keys={"PORT": "81"}
        )
        return path

    def new_agent(self) -> str:
        from ferryman.services import agents

        host = fresh("agent")
        agents.register(self.db, SYSTEM, SPACE, host)
        return host

    def new_channel(self) -> int:
        return int(self.new_channel_row()["id"])

    def new_channel_named(self) -> str:
        return str(self.new_channel_row()["name"])

    def new_channel_row(self) -> dict[str, Any]:
        from ferryman.outbound import Outbound
        from ferryman.services import notifications

        return notifications.save_channel(
            self.db,
            SYSTEM,
            SPACE,
            fresh("chan"),
            "slack",
            {"url": "http://127.0.0.1:9/x"},
            outbound=Outbound(allow=self.settings.outbound_allow),
        )

    def new_member(self) -> str:
        name = fresh("member")
        users.create_user(self.db, name, PASSWORD)
        spaces.set_member(self.db, SYSTEM, SPACE, name, "reporter")
        return name

    def new_server(self) -> int:
        return int(inventory.create_server(self.db, SYSTEM, SPACE, fresh("srv"), "10.1.2.3")["id"])

    def new_environment(self) -> int:
        return int(inventory.create_environment(self.db, SYSTEM, SPACE, fresh("env"))["id"])

    def new_server_named(self) -> str:
        return str(
            inventory.create_server(self.db, SYSTEM, SPACE, fresh("srv"), "10.1.2.3")["name"]
        )

    def new_environment_named(self) -> str:
        return str(inventory.create_environment(self.db, SYSTEM, SPACE, fresh("env"))["name"])

    def new_user(self) -> str:
        name = fresh("user")
        users.create_user(self.db, name, PASSWORD)
        return name

    def own_token(self, role: str) -> int:
        actor = self.actors.get(role)
        if actor is None:
            return 999999
        return int(users.create_token(self.db, actor, "spare", ["read"])["id"])

    def override_member(self) -> tuple[str, str]:
        project = self.new_project()
        name = self.new_member()
        projects.set_project_member(self.db, SYSTEM, project, name, "developer")
        return project, name


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def build_world(base: Path, database_url: str | None = None) -> World:
    # the world's channels point at 127.0.0.1:9: loopback is allow-listed for this install
    env = {"FERRYMAN_HOME": str(base / "home"), "FERRYMAN_OUTBOUND_ALLOW": "127.0.0.0/8"}
    if database_url:
        env["FERRYMAN_DATABASE_URL"] = database_url
    settings = load_settings(env)
    db = prepare_home(settings)
    ensure_ssh_key(settings)
    repo = base / "repo"
    repo.mkdir()
    git("init", "-q", "-b", "master", cwd=repo)
    git("config", "user.email", "dev@example.com", cwd=repo)
    git("config", "user.name", "Dev", cwd=repo)
    (repo / "index.html").write_text("v1\n")
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "first", cwd=repo)
    git("tag", "v1", cwd=repo)
    world = World(settings=settings, db=db, repo_url=f"file://{repo}")
    spaces.create_space(db, SYSTEM, SPACE)
    spaces.create_space(db, SYSTEM, "other")
    for name in (SPACE, "other"):  # the world's repository is a local path
        allow_local_repos(db, name)
    _unlimited(db)  # recipes leave deploys queued and running by the dozen
    for role in ("reporter", "developer", "master", "owner", "other", "super", "author"):
        actor = users.create_user(db, f"{role}-user", PASSWORD, superuser=role == "super")
        world.actors[role] = actor
        if role in ("reporter", "developer", "master", "owner"):
            spaces.set_member(db, SYSTEM, SPACE, actor.username, role)
        elif role == "author":
            spaces.set_member(db, SYSTEM, SPACE, actor.username, "developer")
        elif role == "other":
            spaces.set_member(db, SYSTEM, "other", actor.username, "owner")
        world.tokens[role] = users.create_token(db, actor, "test", ["read", "write"])["token"]
    project, _ = projects.apply_project(db, SYSTEM, parse_project(world.config("site")))
    world.project_id = project.id
    world.first = SqliteState(db.url, base / "first.db")
    return world


def _unlimited(db: Database) -> None:
    from sqlalchemy import update

    from ferryman.db.models import Space

    with db.transaction() as s:
        s.execute(update(Space).values(max_running=1000))


Recipe = Callable[[World, str], tuple[str, str, Any]]
# A host key to pin (the key itself, so no host needs to answer).
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHlmUPlu8Rz8vgw8fDgtpDReaad2KgaGzfyRxd1d8PVP"
P = "/api/v1"


def _space_query(path: str) -> Recipe:
    return lambda w, role: ("GET", f"{P}{path}?space={SPACE}", None)


# (method, route path) → recipe(world, role) → (method, url, json body)
RECIPES: dict[tuple[str, str], Recipe] = {
    ("POST", "/api/v1/auth/login"): lambda w, r: (
        "POST",
        f"{P}/auth/login",
        {"username": "reporter-user", "password": PASSWORD},
    ),
    ("POST", "/api/v1/auth/session"): lambda w, r: (
        "POST",
        f"{P}/auth/session",
        {"username": "reporter-user", "password": PASSWORD},
    ),
    ("DELETE", "/api/v1/auth/session"): lambda w, r: ("DELETE", f"{P}/auth/session", None),
    ("GET", "/api/v1/me"): lambda w, r: ("GET", f"{P}/me", None),
    ("POST", "/api/v1/me/password"): lambda w, r: (
        "POST",
        f"{P}/me/password",
        {"old_password": PASSWORD, "new_password": PASSWORD},
    ),
    ("GET", "/api/v1/ssh-key"): lambda w, r: ("GET", f"{P}/ssh-key", None),
    ("GET", "/api/v1/users"): lambda w, r: ("GET", f"{P}/users", None),
    ("POST", "/api/v1/users"): lambda w, r: (
        "POST",
        f"{P}/users",
        {"username": fresh("new"), "password": PASSWORD},
    ),
    ("PATCH", "/api/v1/users/{user}"): lambda w, r: (
        "PATCH",
        f"{P}/users/{w.new_user()}",
        {"email": "x@example.com"},
    ),
    ("GET", "/api/v1/tokens"): lambda w, r: ("GET", f"{P}/tokens", None),
    ("POST", "/api/v1/tokens"): lambda w, r: ("POST", f"{P}/tokens", {"name": "ci"}),
    ("DELETE", "/api/v1/tokens/{token_id}"): lambda w, r: (
        "DELETE",
        f"{P}/tokens/{w.own_token(r)}",
        None,
    ),
    ("GET", "/api/v1/spaces"): lambda w, r: ("GET", f"{P}/spaces", None),
    ("POST", "/api/v1/spaces"): lambda w, r: ("POST", f"{P}/spaces", {"name": fresh("space")}),
    ("GET", "/api/v1/spaces/{space}"): lambda w, r: ("GET", f"{P}/spaces/{SPACE}", None),
    ("PATCH", "/api/v1/spaces/{space}"): lambda w, r: (
        "PATCH",
        f"{P}/spaces/{SPACE}",
        {"description": "ours"},
    ),
    ("GET", "/api/v1/spaces/{space}/members"): lambda w, r: (
        "GET",
        f"{P}/spaces/{SPACE}/members",
        None,
    ),
    ("POST", "/api/v1/spaces/{space}/members"): lambda w, r: (
        "POST",
        f"{P}/spaces/{SPACE}/members",
        {"user": w.new_user(), "role": "reporter"},
    ),
    ("PUT", "/api/v1/spaces/{space}/members/{user}"): lambda w, r: (
        "PUT",
        f"{P}/spaces/{SPACE}/members/{w.new_member()}",
        {"role": "developer"},
    ),
    ("DELETE", "/api/v1/spaces/{space}/members/{user}"): lambda w, r: (
        "DELETE",
        f"{P}/spaces/{SPACE}/members/{w.new_member()}",
        None,
    ),
    ("GET", "/api/v1/environments"): _space_query("/environments"),
    ("POST", "/api/v1/environments"): lambda w, r: (
        "POST",
        f"{P}/environments",
        {"space": SPACE, "name": fresh("env"), "variables": {"REGION": "bj"}},
    ),
    ("GET", "/api/v1/environments/{env_id}"): lambda w, r: (
        "GET",
        f"{P}/environments/{w.new_environment()}",
        None,
    ),
    ("PATCH", "/api/v1/environments/{env_id}"): lambda w, r: (
        "PATCH",
        f"{P}/environments/{w.new_environment()}",
        {"requires_approval": True},
    ),
    ("DELETE", "/api/v1/environments/{env_id}"): lambda w, r: (
        "DELETE",
        f"{P}/environments/{w.new_environment()}",
        None,
    ),
    ("GET", "/api/v1/spaces/{space}/environments/{name}"): lambda w, r: (
        "GET",
        f"{P}/spaces/{SPACE}/environments/{w.new_environment_named()}",
        None,
    ),
    ("PATCH", "/api/v1/spaces/{space}/environments/{name}"): lambda w, r: (
        "PATCH",
        f"{P}/spaces/{SPACE}/environments/{w.new_environment_named()}",
        {"requires_approval": True},
    ),
    ("DELETE", "/api/v1/spaces/{space}/environments/{name}"): lambda w, r: (
        "DELETE",
        f"{P}/spaces/{SPACE}/environments/{w.new_environment_named()}",
        None,
    ),
    ("GET", "/api/v1/spaces/{space}/servers/{name}"): lambda w, r: (
        "GET",
        f"{P}/spaces/{SPACE}/servers/{w.new_server_named()}",
        None,
    ),
    ("PATCH", "/api/v1/spaces/{space}/servers/{name}"): lambda w, r: (
        "PATCH",
        f"{P}/spaces/{SPACE}/servers/{w.new_server_named()}",
        {"labels": ["region=bj"]},
    ),
    ("DELETE", "/api/v1/spaces/{space}/servers/{name}"): lambda w, r: (
        "DELETE",
        f"{P}/spaces/{SPACE}/servers/{w.new_server_named()}",
        None,
    ),
    ("DELETE", "/api/v1/spaces/{space}/channels/{name}"): lambda w, r: (
        "DELETE",
        f"{P}/spaces/{SPACE}/channels/{w.new_channel_named()}",
        None,
    ),
    ("GET", "/api/v1/spaces/{space}/summary"): lambda w, r: (
        "GET",
        f"{P}/spaces/{SPACE}/summary",
        None,
    ),
    ("PUT", "/api/v1/spaces/{space}/summary"): lambda w, r: (
        "PUT",
        f"{P}/spaces/{SPACE}/summary",
        {"channel": w.new_channel_named(), "period": "weekly"},
    ),
    ("POST", "/api/v1/spaces/{space}/channels/{name}/test"): lambda w, r: (
        "POST",
        f"{P}/spaces/{SPACE}/channels/{w.new_channel_named()}/test",
        None,
    ),
    ("GET", "/api/v1/spaces/{space}/channels/{name}/deliveries"): lambda w, r: (
        "GET",
        f"{P}/spaces/{SPACE}/channels/{w.new_channel_named()}/deliveries",
        None,
    ),
    ("GET", "/api/v1/servers"): _space_query("/servers"),
    ("POST", "/api/v1/servers"): lambda w, r: (
        "POST",
        f"{P}/servers",
        {"space": SPACE, "name": fresh("srv"), "address": "10.0.0.9", "labels": ["canary"]},
    ),
    ("GET", "/api/v1/servers/{server_id}"): lambda w, r: (
        "GET",
        f"{P}/servers/{w.new_server()}",
        None,
    ),
    ("PATCH", "/api/v1/servers/{server_id}"): lambda w, r: (
        "PATCH",
        f"{P}/servers/{w.new_server()}",
        {"labels": ["region=bj"]},
    ),
    ("DELETE", "/api/v1/servers/{server_id}"): lambda w, r: (
        "DELETE",
        f"{P}/servers/{w.new_server()}",
        None,
    ),
    ("GET", "/api/v1/spaces/{space}/ssh-key"): lambda w, r: (
        "GET",
        f"{P}/spaces/{SPACE}/ssh-key",
        None,
    ),
    ("GET", "/api/v1/servers/{server_id}/host-key"): lambda w, r: (
        "GET",
        f"{P}/servers/{w.new_server()}/host-key",
        None,
    ),
    ("POST", "/api/v1/servers/{server_id}/host-key"): lambda w, r: (
        "POST",
        f"{P}/servers/{w.new_server()}/host-key",
        {"key": HOST_KEY},
    ),
    ("GET", "/api/v1/spaces/{space}/repo-hosts"): lambda w, r: (
        "GET",
        f"{P}/spaces/{SPACE}/repo-hosts",
        None,
    ),
    ("POST", "/api/v1/spaces/{space}/repo-hosts"): lambda w, r: (
        "POST",
        f"{P}/spaces/{SPACE}/repo-hosts",
        {"host": "git.example.com:2222", "key": HOST_KEY},
    ),
    ("PATCH", "/api/v1/spaces/{space}/limits"): lambda w, r: (
        "PATCH",
        f"{P}/spaces/{SPACE}/limits",
        {"max_running": 1000},  # the same: an owner may set it, never raise it
    ),
    ("GET", "/api/v1/projects"): _space_query("/projects"),
    ("POST", "/api/v1/projects"): lambda w, r: ("POST", f"{P}/projects", w.config(fresh("app"))),
    ("GET", "/api/v1/projects/{project}"): lambda w, r: (
        "GET",
        f"{P}/projects/{w.project_id}",
        None,
    ),
    ("POST", "/api/v1/projects/{project}/copy"): lambda w, r: (
        "POST",
        f"{P}/projects/{w.project_id}/copy",
        {"name": fresh("copy")},
    ),
    ("POST", "/api/v1/projects/{project}/detect"): lambda w, r: (
        "POST",
        f"{P}/projects/{w.project_id}/detect",
        {"env": "staging"},
    ),
    ("POST", "/api/v1/projects/{project}/envs/{env}/check"): lambda w, r: (
        "POST",
        f"{P}/projects/{w.project_id}/envs/staging/check",
        None,
    ),
    ("GET", "/api/v1/projects/{project}/refs"): lambda w, r: (
        "GET",
        f"{P}/projects/{w.project_id}/refs",
        None,
    ),
    ("GET", "/api/v1/projects/{project}/members"): lambda w, r: (
        "GET",
        f"{P}/projects/{w.project_id}/members",
        None,
    ),
    ("POST", "/api/v1/projects/{project}/members"): lambda w, r: (
        "POST",
        f"{P}/projects/{w.project_id}/members",
        {"user": w.new_member(), "role": "master"},
    ),
    ("DELETE", "/api/v1/projects/{project}/members/{user}"): lambda w, r: (
        "DELETE",
        "{}/projects/{}/members/{}".format(P, *w.override_member()),
        None,
    ),
    ("POST", "/api/v1/projects/{project}/deploys"): lambda w, r: (
        "POST",
        f"{P}/projects/{w.new_project()}/deploys",
        {"env": "staging", "ref": "v1"},
    ),
    ("POST", "/api/v1/projects/{project}/rollbacks"): lambda w, r: (
        "POST",
        f"{P}/projects/{w.live_project()}/rollbacks",
        {"env": "staging"},
    ),
    ("GET", "/api/v1/projects/{project}/envs/{env}/releases"): lambda w, r: (
        "GET",
        f"{P}/projects/{w.project_id}/envs/staging/releases",
        None,
    ),
    ("GET", "/api/v1/projects/{project}/envs/{env}/secrets"): lambda w, r: (
        "GET",
        f"{P}/projects/{w.project_id}/envs/staging/secrets",
        None,
    ),
    ("PUT", "/api/v1/projects/{project}/envs/{env}/secrets/{name}"): lambda w, r: (
        "PUT",
        f"{P}/projects/{w.project_id}/envs/staging/secrets/{fresh('KEY_')}",
        {"value": "hunter2-hunter2"},
    ),
    ("GET", "/api/v1/projects/{project}/envs/{env}/secrets/{name}/value"): lambda w, r: (
        "GET",
        f"{P}/projects/{w.project_id}/envs/staging/secrets/{w.new_secret()}/value",
        None,
    ),
    ("DELETE", "/api/v1/projects/{project}/envs/{env}/secrets/{name}"): lambda w, r: (
        "DELETE",
        f"{P}/projects/{w.project_id}/envs/staging/secrets/{w.new_secret()}",
        None,
    ),
    ("GET", "/api/v1/projects/{project}/envs/{env}/config"): lambda w, r: (
        "GET",
        f"{P}/projects/{w.project_id}/envs/staging/config",
        None,
    ),
    ("GET", "/api/v1/projects/{project}/envs/{env}/config/preview"): lambda w, r: (
        "GET",
        f"{P}/projects/{w.project_id}/envs/staging/config/preview?path={w.new_config()}",
        None,
    ),
    ("GET", "/api/v1/projects/{project}/envs/{env}/config/files/{path}"): lambda w, r: (
        "GET",
        f"{P}/projects/{w.project_id}/envs/staging/config/files/{w.new_config()}",
        None,
    ),
    ("PUT", "/api/v1/projects/{project}/envs/{env}/config/files/{path}"): lambda w, r: (
        "PUT",
        f"{P}/projects/{w.project_id}/envs/staging/config/files/{fresh('conf')}.ini",
        {"content": "a=1\n", "mode": "0640"},
    ),
    ("DELETE", "/api/v1/projects/{project}/envs/{env}/config/files/{path}"): lambda w, r: (
        "DELETE",
        f"{P}/projects/{w.project_id}/envs/staging/config/files/{w.new_config()}",
        None,
    ),
    ("PUT", "/api/v1/projects/{project}/envs/{env}/config/overrides/{scope}/{path}"): lambda w, r: (
        "PUT",
        f"{P}/projects/{w.project_id}/envs/staging/config/overrides/host:web9/{w.new_config()}",
        {"set": {"PORT": "90"}},
    ),
    (
        "DELETE",
        "/api/v1/projects/{project}/envs/{env}/config/overrides/{scope}/{path}",
    ): lambda w, r: (
        "DELETE",
        f"{P}/projects/{w.project_id}/envs/staging/config/overrides/label:job-node/"
        f"{w.new_config()}",
        None,
    ),
    ("GET", "/api/v1/projects/{project}/envs/{env}/config/history/{path}"): lambda w, r: (
        "GET",
        f"{P}/projects/{w.project_id}/envs/staging/config/history/{w.new_config()}",
        None,
    ),
    ("GET", "/api/v1/projects/{project}/envs/{env}/config/diff/{path}"): lambda w, r: (
        "GET",
        f"{P}/projects/{w.project_id}/envs/staging/config/diff/{w.new_config()}",
        None,
    ),
    ("POST", "/api/v1/spaces/{space}/agents"): lambda w, r: (
        "POST",
        f"{P}/spaces/{SPACE}/agents",
        {"host": fresh("agent")},
    ),
    ("DELETE", "/api/v1/spaces/{space}/agents/{host}"): lambda w, r: (
        "DELETE",
        f"{P}/spaces/{SPACE}/agents/{w.new_agent()}",
        None,
    ),
    ("GET", "/api/v1/spaces/{space}/channels"): lambda w, r: (
        "GET",
        f"{P}/spaces/{SPACE}/channels",
        None,
    ),
    ("PUT", "/api/v1/spaces/{space}/channels/{name}"): lambda w, r: (
        "PUT",
        f"{P}/spaces/{SPACE}/channels/{fresh('chan')}",
        {"kind": "webhook", "settings": {"url": "http://127.0.0.1:9/hook", "secret": "s3cret"}},
    ),
    ("DELETE", "/api/v1/channels/{channel_id}"): lambda w, r: (
        "DELETE",
        f"{P}/channels/{w.new_channel()}",
        None,
    ),
    ("POST", "/api/v1/channels/{channel_id}/test"): lambda w, r: (
        "POST",
        f"{P}/channels/{w.new_channel()}/test",
        None,
    ),
    ("GET", "/api/v1/channels/{channel_id}/deliveries"): lambda w, r: (
        "GET",
        f"{P}/channels/{w.new_channel()}/deliveries",
        None,
    ),
    ("PUT", "/api/v1/projects/{project}/hook-secret"): lambda w, r: (
        "PUT",
        f"{P}/projects/{w.project_id}/hook-secret",
        {"secret": "a-long-webhook-secret"},
    ),
    ("GET", "/api/v1/tickets"): _space_query("/tickets"),
    ("POST", "/api/v1/tickets"): lambda w, r: (
        "POST",
        f"{P}/tickets",
        {"project": w.new_project(), "env": "production", "ref": "v1", "title": "release"},
    ),
    ("GET", "/api/v1/tickets/{ticket_id}"): lambda w, r: (
        "GET",
        f"{P}/tickets/{w.new_ticket()}",
        None,
    ),
    ("GET", "/api/v1/tickets/{ticket_id}/preview"): lambda w, r: (
        "GET",
        f"{P}/tickets/{w.new_ticket()}/preview",
        None,
    ),
    ("POST", "/api/v1/tickets/{ticket_id}/submit"): lambda w, r: (
        "POST",
        f"{P}/tickets/{w.new_ticket(by=w.creator_for(r), draft=True)}/submit",
        None,
    ),
    ("POST", "/api/v1/tickets/{ticket_id}/approve"): lambda w, r: (
        "POST",
        f"{P}/tickets/{w.new_ticket()}/approve",
        {"comment": "ok"},
    ),
    ("POST", "/api/v1/tickets/{ticket_id}/reject"): lambda w, r: (
        "POST",
        f"{P}/tickets/{w.new_ticket()}/reject",
        {"reason": "not now"},
    ),
    ("POST", "/api/v1/tickets/{ticket_id}/deploy"): lambda w, r: (
        "POST",
        f"{P}/tickets/{w.new_ticket(env='staging')}/deploy",
        None,
    ),
    ("POST", "/api/v1/tickets/{ticket_id}/cancel"): lambda w, r: (
        "POST",
        f"{P}/tickets/{w.new_ticket(by=w.creator_for(r))}/cancel",
        {"reason": "changed my mind"},
    ),
    ("POST", "/api/v1/tickets/{ticket_id}/rollback"): lambda w, r: (
        "POST",
        f"{P}/tickets/{w.deployed_ticket()}/rollback",
        None,
    ),
    ("GET", "/api/v1/deploys"): _space_query("/deploys"),
    ("GET", "/api/v1/deploys/{deploy_id}"): lambda w, r: (
        "GET",
        f"{P}/deploys/{w.queued_deploy()}",
        None,
    ),
    ("GET", "/api/v1/deploys/{deploy_id}/logs"): lambda w, r: (
        "GET",
        f"{P}/deploys/{w.queued_deploy()}/logs",
        None,
    ),
    ("GET", "/api/v1/deploys/{deploy_id}/analysis"): lambda w, r: (
        "GET",
        f"{P}/deploys/{w.queued_deploy()}/analysis",
        None,
    ),
    ("POST", "/api/v1/deploys/{deploy_id}/cancel"): lambda w, r: (
        "POST",
        f"{P}/deploys/{w.queued_deploy(by=w.creator_for(r))}/cancel",
        {"reason": "wrong ref"},
    ),
    ("POST", "/api/v1/deploys/{deploy_id}/continue"): lambda w, r: (
        "POST",
        f"{P}/deploys/{w.paused_rollout()}/continue",
        None,
    ),
    ("POST", "/api/v1/deploys/{deploy_id}/abort"): lambda w, r: (
        "POST",
        f"{P}/deploys/{w.paused_rollout()}/abort",
        None,
    ),
    ("POST", "/api/v1/deploys/{deploy_id}/rollback-now"): lambda w, r: (
        "POST",
        f"{P}/deploys/{w.paused_rollout()}/rollback-now",
        None,
    ),
    ("GET", "/api/v1/deploys/{deploy_id}/log"): lambda w, r: (
        "GET",
        f"{P}/deploys/{w.queued_deploy()}/log?after=0",
        None,
    ),
    ("POST", "/api/v1/deploys/{deploy_id}/retry"): lambda w, r: (
        "POST",
        f"{P}/deploys/{w.failed_deploy()}/retry",
        None,
    ),
    ("GET", "/api/v1/deploys/{deploy_id}/watches"): lambda w, r: (
        "GET",
        f"{P}/deploys/{w.queued_deploy()}/watches",
        None,
    ),
    ("POST", "/api/v1/deploys/{deploy_id}/promote"): lambda w, r: (
        "POST",
        f"{P}/deploys/{w.succeeded_deploy()}/promote",
        {"env": "production"},
    ),
    ("GET", "/api/v1/deploys/{deploy_id}/steps"): lambda w, r: (
        "GET",
        f"{P}/deploys/{w.queued_deploy()}/steps",
        None,
    ),
    ("GET", "/api/v1/audit"): _space_query("/audit"),
    ("GET", "/api/v1/stats"): _space_query("/stats"),
}
RECIPES.update(release_and_group_recipes.RECIPES)  # /project, project deletion, groups
