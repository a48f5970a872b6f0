"""Review of issue 15's hardening: what still gets through. Each test fails on the code it
was written against (see the report); it asserts on stored rows and answers."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

import pytest
import yaml
from sqlalchemy import select

from ferryman.bootstrap import prepare_home
from ferryman.config.settings import load_settings
from ferryman.db.models import AgentTask, Deploy, LogLine, Project, Ticket
from ferryman.errors import FerrymanError
from ferryman.services import agents, deploy_views, users
from ferryman.services.audit import SYSTEM
from tests.api.world import SPACE
from tests.auth.test_ldap import BASE, ROOT_PW, slapd  # noqa: F401  (fixture)
from tests.security.test_http_surface import (  # noqa: F401  (fixture)
    SECRET,
    _body,
    _count,
    _signed,
    surface,
)

# --- webhooks: replays ---------------------------------------------------------------------


def test_a_github_delivery_replayed_to_the_gitea_endpoint_makes_nothing(surface):  # noqa: F811
    """GitHub and Gitea sign the same way (hex HMAC-SHA256 of the body with the project's one
    secret), but the replay digest is unique per *provider*: a captured GitHub delivery sent
    once more to ``/hooks/gitea/…`` (signature header renamed) is accepted as new."""
    body = _body("github", ferryman_test="cross-provider-replay")
    first = surface.client.post(
        f"/api/v1/hooks/github/{SPACE}:hooked", content=body, headers=_signed("github", body)
    )
    assert first.status_code == 200, first.text
    assert len(first.json()["tickets"]) == 1
    tickets, deploys = _count(surface, Ticket), _count(surface, Deploy)
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    replay = surface.client.post(
        f"/api/v1/hooks/gitea/{SPACE}:hooked",
        content=body,
        headers={
            "X-Gitea-Signature": digest,
            "X-Gitea-Event": "push",
            "X-Gitea-Delivery": str(uuid.uuid4()),
        },
    )
    assert replay.status_code == 401, replay.text
    assert (_count(surface, Ticket), _count(surface, Deploy)) == (tickets, deploys)


def test_a_gitlab_delivery_replayed_with_its_json_reformatted_makes_nothing(surface):  # noqa: F811
    """GitLab's proof is a static token, not a signature of the body: the body digest only
    stops a byte-identical replay. The same push re-serialised (one more space) is new."""
    body = _body("gitlab", ferryman_test="reformatted-replay")
    url = f"/api/v1/hooks/gitlab/{SPACE}:hooked"
    first = surface.client.post(url, content=body, headers=_signed("gitlab", body))
    assert first.status_code == 200, first.text
    assert len(first.json()["tickets"]) == 1
    tickets = _count(surface, Ticket)
    again = json.dumps(json.loads(body), indent=1).encode()
    replay = surface.client.post(url, content=again, headers=_signed("gitlab", again))
    assert replay.status_code == 401, replay.text
    assert _count(surface, Ticket) == tickets


# --- sign-in: directory accounts -----------------------------------------------------------


def _directory_db(slapd_info, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "ldap.yaml").write_text(
        yaml.safe_dump(
            {
                "url": slapd_info["url"],
                "bind_dn": f"cn=admin,{BASE}",
                "bind_password": ROOT_PW,
                "user_base": f"ou=people,{BASE}",
                "user_filter": "(uid={username})",
                "group_base": f"ou=groups,{BASE}",
                "group_filter": "(member={dn})",
                "groups": {"developers": {"default": "developer"}},
                "timeout": 2,
            }
        )
    )
    return prepare_home(load_settings({"FERRYMAN_HOME": str(home)}))


def test_a_disabled_directory_user_cannot_come_back_under_another_case_of_the_name(
    slapd,  # noqa: F811  (the fixture)
    tmp_path,
):
    """LDAP matches ``uid`` ignoring case; Ferryman looks the local account up by the exact
    string. A superuser disables ``lily``; she signs in as ``LILY`` and gets a new, active
    account with her groups' roles."""
    db = _directory_db(slapd, tmp_path)
    try:
        assert users.login(db, "lily", "lily-password-1")
        lily = next(u for u in users.list_users(db, SYSTEM) if u["username"] == "lily")
        users.update_user(db, SYSTEM, lily["id"], is_active=False)
        with pytest.raises(FerrymanError):
            users.login(db, "lily", "lily-password-1")
        came_back = None
        with pytest.raises(FerrymanError):
            came_back = users.login(db, "LILY", "lily-password-1")
        assert came_back is None
        names = sorted(u["username"] for u in users.list_users(db, SYSTEM))
        assert names == ["lily"], names
    finally:
        db.dispose()


def test_case_variants_of_a_directory_name_share_one_sign_in_limit(slapd, tmp_path):  # noqa: F811
    """The limiter keys on the name as typed; the directory does not. Past the 10 free
    guesses for ``lily`` from one address, ``Lily``, ``lIly``… each get 10 more."""
    db = _directory_db(slapd, tmp_path)
    try:
        evaluated = 0
        for name in ("lily", "Lily", "lIly", "liLy"):
            for _ in range(11):
                try:
                    users.login(db, name, "wrong-guess", ip="127.0.210.9")
                except FerrymanError as exc:
                    if getattr(exc, "http_status", 0) == 429:
                        break
                    evaluated += 1
        assert evaluated <= 11, f"{evaluated} guesses evaluated for one directory account"
    finally:
        db.dispose()


# --- secrets: what a pull host reports ------------------------------------------------------

PULL_SECRET = "pull-Secret-Value-9f3e1"


def test_a_pull_hosts_reported_output_is_stored_and_shown_masked(surface):  # noqa: F811
    """Push-mode output goes through the recorder's masker; a pull host's report (the tail
    of its hooks' output, e.g. a failing ``pre_release`` printing ``$DB_PASSWORD``) is
    stored in ``log_lines`` as sent and shown to every reader of the deploy."""
    w = surface.world
    with w.db.transaction() as s:
        project = s.scalar(select(Project).where(Project.name == "hooked"))
        deploy = Deploy(
            project_id=project.id,
            env="production",
            variables={"DB_PASSWORD": w.db.box.seal(PULL_SECRET)},
            secret_names=["DB_PASSWORD"],
            config={},
            status="running",
        )
        s.add(deploy)
        s.flush()
        deploy_id = deploy.id
    agents.create_tasks(w.db, deploy_id, project.space_id, [surface.agent_host], "deploy", "r1")
    agents.make_due(w.db, deploy_id, [surface.agent_host])
    taken = agents.take(w.db, project.space_id, surface.agent_host)
    assert taken is not None  # fetched: its script carries the claim it reports with
    with w.db.read() as s:
        task_id = s.scalar(select(AgentTask.id).where(AgentTask.deploy_id == deploy_id))
    answer = surface.client.post(
        f"/api/v1/agent/{surface.agent_host}/report",
        headers={"Authorization": f"Bearer {surface.agent_token}"},
        data={
            "task": str(task_id),
            "claim": taken[0].claimed_by,
            "phase": "pre-deploy",
            "exit_code": "1",
            "output": f"psql: password {PULL_SECRET} rejected\n",
            "status": "failed",
        },
    )
    assert answer.status_code == 204, answer.text
    with w.db.read() as s:
        stored = s.scalars(select(LogLine.text).where(LogLine.deploy_id == deploy_id)).all()
    shown = [x["text"] for x in deploy_views.logs_after(w.db, deploy_id, 0, 100)]
    assert stored and not any(PULL_SECRET in t for t in stored), stored
    assert not any(PULL_SECRET in t for t in shown), shown
