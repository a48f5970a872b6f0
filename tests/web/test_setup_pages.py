"""Setting a space up in the browser: spaces, environments (approval, variables, secret
variables), a project's secrets and its members' role overrides — through the services the
API uses, with the same permissions (a form posted without the role is 403), audit rows, and
errors shown at the field with what was typed kept. Secret values never come back in a page.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from ferryman.db.models import AuditEntry, Environment, Space
from ferryman.services import inventory, projects, secrets, spaces
from ferryman.services.audit import SYSTEM
from tests.api.world import SPACE, World, build_world
from tests.web.test_pages import browser, csrf_of


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("setup"))


def audited(world: World, action: str, target: str) -> bool:
    with world.db.read() as s:
        return (
            s.scalar(
                select(AuditEntry.id).where(
                    AuditEntry.action == action, AuditEntry.target == target
                )
            )
            is not None
        )


def test_a_superuser_creates_a_space_with_an_owner_and_an_owner_disables_it(world):
    admin = browser(world, "super")
    token = csrf_of(admin, "/spaces")
    made = admin.post(
        "/spaces",
        data={"csrf": token, "name": "shop", "description": "<b>x</b>", "owner": "owner-user"},
        follow_redirects=False,
    )
    assert made.status_code == 303 and made.headers["location"] == "/s/shop/"
    assert audited(world, "space.create", "space:shop")
    listed = admin.get("/spaces").text
    assert "&lt;b&gt;x&lt;/b&gt;" in listed and "<b>x</b>" not in listed

    again = admin.post("/spaces", data={"csrf": token, "name": "shop", "owner": "nobody"})
    assert again.status_code == 409
    assert 'value="shop"' in again.text and 'aria-invalid="true"' in again.text
    assert "already exists" in again.text

    # the new space leads its owner to a first deploy, step by step
    owner = browser(world, "owner")
    steps = owner.get("/s/shop/").text
    assert 'id="onboarding"' in steps and "Add a server" in steps
    assert 'class="done"' not in steps
    inventory.create_server(world.db, world.actors["super"], "shop", "web-1", "127.0.150.9")
    steps = owner.get("/s/shop/").text
    assert re.search(r'<li class="done"><a href="/s/shop/servers/new">', steps)

    master = browser(world, "master")
    refused = master.post("/spaces", data={"csrf": csrf_of(master), "name": "mine"})
    assert refused.status_code == 403
    assert 'class="main"' in refused.text or "Dashboard" in refused.text  # navigation kept

    off = owner.post("/spaces/shop/active", data={"csrf": csrf_of(owner)}, follow_redirects=False)
    assert off.status_code == 303
    with world.db.read() as s:
        assert s.scalar(select(Space.is_active).where(Space.name == "shop")) is False
    assert audited(world, "space.update", "space:shop")
    developer = browser(world, "developer")
    no = developer.post(f"/spaces/{SPACE}/active", data={"csrf": csrf_of(developer)})
    assert no.status_code == 403


def test_a_master_sets_an_environments_approval_variables_and_secret_variables(world):
    master = browser(world, "master")
    url = f"/s/{SPACE}/environments"
    token = csrf_of(master, url)
    created = master.post(
        url,
        data={
            "csrf": token,
            "form_id": "new",
            "name": "qa",
            "approval": "1",
            "variables": "REGION=eu\n# a comment\n",
            "secret_variables": "DB_PASSWORD=hunter2-qa-secret",
        },
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text[:500]
    with world.db.read() as s:
        env = s.scalars(
            select(Environment).join(Space).where(Space.name == SPACE, Environment.name == "qa")
        ).one()
        assert env.requires_approval and env.secrets == ["DB_PASSWORD"]
        assert env.variables["REGION"] == "eu"
        assert "hunter2" not in env.variables["DB_PASSWORD"]  # sealed at rest
        env_id = env.id
    shown = master.get(url).text
    assert "hunter2-qa-secret" not in shown and "DB_PASSWORD=***" in shown

    # sent back as *** the secret keeps its value; the approval can be switched off
    kept = master.post(
        url,
        data={
            "csrf": token,
            "form_id": str(env_id),
            "name": "qa",
            "variables": "REGION=us",
            "secret_variables": "DB_PASSWORD=***",
        },
        follow_redirects=False,
    )
    assert kept.status_code == 303
    with world.db.read() as s:
        env = s.get(Environment, env_id)
        assert env is not None and not env.requires_approval
        assert world.db.box.open(env.variables["DB_PASSWORD"]) == "hunter2-qa-secret"
    assert audited(world, "environment.update", "env:qa")

    wrong = master.post(
        url,
        data={"csrf": token, "form_id": "new", "name": "stage2", "variables": "no equals sign"},
    )
    assert wrong.status_code == 422
    form = wrong.text[wrong.text.index('data-form="new"') :]
    assert "line 1: write NAME=value" in form and "no equals sign" in form
    assert 'value="stage2"' in form
    assert "Input should be" not in wrong.text

    developer = browser(world, "developer")
    refused = developer.post(
        url,
        data={"csrf": csrf_of(developer), "form_id": str(env_id), "variables": "REGION=x"},
    )
    assert refused.status_code == 403
    assert 'name="form_id"' not in developer.get(url).text  # no form without the role

    other = inventory.list_environments(world.db, world.actors["super"], "other")[0]
    moved = master.post(url, data={"csrf": token, "form_id": str(other["id"]), "variables": ""})
    assert moved.status_code == 404  # an id from another space is not found here


def test_a_master_sets_a_project_secret_and_an_owner_overrides_a_role(world):
    name = projects.get_project(world.db, world.actors["super"], int(world.new_project()))[0].name
    url = f"/s/{SPACE}/projects/{name}/access"
    master = browser(world, "master")
    token = csrf_of(master, url)
    saved = master.post(
        f"/s/{SPACE}/projects/{name}/secrets",
        data={"csrf": token, "env": "production", "secret": "API_KEY", "value": "sk-live-98765"},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    page = master.get(url).text
    assert "API_KEY" in page and "sk-live-98765" not in page
    assert [
        x["name"]
        for x in secrets.list_secrets(
            world.db,
            world.actors["super"],
            int(projects.get_project(world.db, world.actors["super"], f"{SPACE}:{name}")[0].id),
            "production",
        )
    ] == ["API_KEY"]
    empty = master.post(
        f"/s/{SPACE}/projects/{name}/secrets",
        data={"csrf": token, "env": "production", "secret": "OTHER", "value": ""},
    )
    assert empty.status_code == 422 and 'value="OTHER"' in empty.text
    assert "a value is required" in empty.text

    developer = browser(world, "developer")
    refused = developer.post(
        f"/s/{SPACE}/projects/{name}/secrets",
        data={"csrf": csrf_of(developer), "env": "production", "secret": "X", "value": "y"},
    )
    assert refused.status_code == 403
    assert 'id="secret-form"' not in developer.get(url).text

    owner = browser(world, "owner")
    promoted = owner.post(
        f"/s/{SPACE}/projects/{name}/members",
        data={"csrf": csrf_of(owner), "username": "developer-user", "role": "master"},
        follow_redirects=False,
    )
    assert promoted.status_code == 303
    shown = owner.get(url).text
    assert re.search(r"<td>developer-user</td><td>master</td>", shown)
    assert audited(world, "project_member.set", f"project:{name}/user:developer-user")
    # the override counts at once: the developer may now set this project's secrets
    allowed = developer.post(
        f"/s/{SPACE}/projects/{name}/secrets",
        data={"csrf": csrf_of(developer), "env": "production", "secret": "X2", "value": "yy-yy"},
        follow_redirects=False,
    )
    assert allowed.status_code == 303
    back = owner.post(
        f"/s/{SPACE}/projects/{name}/members",
        data={"csrf": csrf_of(owner), "username": "developer-user", "role": ""},
        follow_redirects=False,
    )
    assert back.status_code == 303
    reporter = browser(world, "reporter")
    no = reporter.post(
        f"/s/{SPACE}/projects/{name}/members",
        data={"csrf": csrf_of(reporter), "username": "reporter-user", "role": "owner"},
    )
    assert no.status_code == 403


def test_a_form_body_past_the_limit_is_refused_before_it_is_read(world):
    master = browser(world, "master")
    huge = master.post(
        f"/s/{SPACE}/environments",
        content=b"csrf=x&form_id=new&variables=" + b"A" * (3 * 1024 * 1024),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert huge.status_code == 413


def test_the_audit_log_reads_as_sentences_with_links_and_details_folded(world):
    master = browser(world, "master")
    token = csrf_of(master, f"/s/{SPACE}/environments")
    master.post(
        f"/s/{SPACE}/environments",
        data={"csrf": token, "form_id": "new", "name": "audited", "variables": "A=<script>"},
    )
    owner = browser(world, "owner")
    shown = owner.get(f"/s/{SPACE}/audit?action=environment.create").text
    row = shown[shown.index('data-action="environment.create"') :]
    row = row[: row.index("</tr>")]
    assert "<strong>master-user</strong> created the environment" in row
    assert re.search(rf'<a href="/s/{SPACE}/environments">[^<]*env:audited</a>', row)
    assert "<details><summary>Details</summary>" in row and "<script>" not in row
    chinese = browser(world, "owner", language="zh-CN")
    assert "创建了环境" in chinese.get(f"/s/{SPACE}/audit?action=environment.create").text


def test_the_first_steps_link_only_to_the_forms_the_viewers_role_can_send(world):
    spaces.create_space(world.db, SYSTEM, "firststeps", owner="owner-user")
    for role in ("reporter", "developer", "master"):
        spaces.set_member(world.db, SYSTEM, "firststeps", world.actors[role].username, role)
    links = {
        role: set(re.findall(r'href="(/s/firststeps/[^"]*)"', _onboarding_of(world, role)))
        for role in ("reporter", "developer", "master", "owner")
    }
    forms = {"/s/firststeps/servers/new", "/s/firststeps/projects/new", "/s/firststeps/tickets/new"}
    assert not links["reporter"] & forms
    assert links["developer"] & forms == {"/s/firststeps/tickets/new"}
    assert links["master"] >= forms and links["owner"] >= forms
    steps = _onboarding_of(world, "reporter")
    assert steps.count("<li") == 6 and "someone with a higher role does this" in steps


def _onboarding_of(world: World, role: str) -> str:
    page = browser(world, role).get("/s/firststeps/").text
    found = re.search(
        r'<section class="card highlight" id="onboarding">(.*?)</section>', page, re.S
    )
    assert found is not None, f"no first steps for the {role}"
    return found.group(1)
