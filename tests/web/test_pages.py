"""The web UI served by the API app: every page renders in both languages; forms follow the
same permissions as the API (a reporter gets 403 when posting them directly); CSRF, cookies
and redirects behave."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ferryman.app import create_app
from ferryman.services import projects as project_service
from ferryman.services import stats
from tests.api.world import PASSWORD, SPACE, World, build_world

CSRF = re.compile(r'name="csrf-token" content="([^"]*)"')


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("web"))


def browser(
    world: World, role: str, base_url: str = "http://testserver", language: str = "en"
) -> TestClient:
    client = TestClient(
        create_app(world.settings, world.db, embedded_worker=False),
        base_url=base_url,
        headers={"Accept-Language": language},
    )
    signed = client.post(
        "/login",
        data={"username": world.actors[role].username, "password": PASSWORD, "next": "/"},
        follow_redirects=False,
    )
    assert signed.status_code == 303, signed.text
    return client


def csrf_of(client: TestClient, url: str = "/account") -> str:
    found = CSRF.search(client.get(url).text)
    assert found and found.group(1)
    return found.group(1)


def pages(world: World) -> list[str]:
    ticket = world.new_ticket()
    name = project_service.get_project(world.db, world.actors["super"], int(world.new_project()))[
        0
    ].name
    base = f"/s/{SPACE}"
    return [
        f"{base}/",
        f"{base}/projects",
        f"{base}/projects/new",
        f"{base}/projects/{name}",
        f"{base}/projects/{name}/edit",
        f"{base}/projects/{name}/releases",
        f"{base}/projects/{name}/config",
        f"{base}/projects/{name}/config?path=.env",
        f"{base}/projects/{name}/access",
        f"{base}/environments",
        "/spaces",
        f"{base}/tickets",
        f"{base}/tickets/new",
        f"{base}/tickets/{ticket}",
        f"{base}/deploys",
        f"{base}/servers",
        f"{base}/servers/new",
        f"{base}/members",
        f"{base}/audit",
        "/account",
        "/users",
    ]


def test_every_page_renders_in_english_and_in_chinese(world):
    urls = pages(world)
    english = browser(world, "super")
    chinese = browser(world, "super", language="zh-CN,zh;q=0.9")
    for url in urls:
        shown = english.get(url)
        assert shown.status_code == 200, (url, shown.text[:500])
        assert 'lang="en"' in shown.text
        translated = chinese.get(url)
        assert translated.status_code == 200, url
        assert 'lang="zh-CN"' in translated.text and "摆渡人" in translated.text, url
    assert "仪表盘" in chinese.get(f"/s/{SPACE}/").text


def test_a_reporter_sees_no_deploy_or_approve_buttons_and_posting_the_forms_is_refused(world):
    ticket = world.new_ticket()  # pending approval in production, by another user
    reporter = browser(world, "reporter")
    page = reporter.get(f"/s/{SPACE}/tickets/{ticket}")
    assert page.status_code == 200
    for action in ("approve", "reject", "deploy", "rollback", "cancel"):
        assert f"/tickets/{ticket}/{action}" not in page.text
    token = csrf_of(reporter)
    for action in ("approve", "deploy", "cancel"):
        refused = reporter.post(
            f"/s/{SPACE}/tickets/{ticket}/{action}", data={"csrf": token, "comment": "x"}
        )
        assert refused.status_code == 403, (action, refused.text[:300])
    refused = reporter.post(
        f"/s/{SPACE}/servers", data={"csrf": token, "name": "sneaky", "address": "127.0.150.209"}
    )
    assert refused.status_code == 403
    assert "New project" not in reporter.get(f"/s/{SPACE}/projects").text
    master = browser(world, "master")
    assert f"/tickets/{ticket}/approve" in master.get(f"/s/{SPACE}/tickets/{ticket}").text


def test_a_form_without_the_sessions_csrf_token_is_refused(world):
    ticket = world.new_ticket()
    master = browser(world, "master")
    refused = master.post(f"/s/{SPACE}/tickets/{ticket}/approve", data={"csrf": "forged"})
    assert refused.status_code == 403
    approved = master.post(
        f"/s/{SPACE}/tickets/{ticket}/approve",
        data={"csrf": csrf_of(master), "comment": "ok"},
        follow_redirects=False,
    )
    assert approved.status_code == 303


def _cookie(response: Any, name: str) -> str:
    headers: list[str] = response.headers.get_list("set-cookie")
    return next(h for h in headers if h.startswith(name + "="))


def _group(pattern: str, text: str, flags: int = 0) -> str:
    """The first group of ``pattern`` in a page; the test fails naming it when it is missing."""
    found = re.search(pattern, text, flags)
    assert found is not None, f"{pattern!r} is not in the page"
    return found.group(1)


def test_the_session_cookie_is_httponly_lax_and_secure_over_https(world):
    for base_url, secure in (("http://testserver", False), ("https://testserver", True)):
        client = TestClient(
            create_app(world.settings, world.db, embedded_worker=False), base_url=base_url
        )
        signed = client.post(
            "/login", data={"username": "master-user", "password": PASSWORD}, follow_redirects=False
        )
        cookie = _cookie(signed, "ferryman_session").lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        assert ("secure" in cookie.split("; ")) is secure


def test_signing_in_goes_back_to_the_page_asked_for_and_never_off_site(world):
    client = TestClient(create_app(world.settings, world.db, embedded_worker=False))
    asked = client.get(f"/s/{SPACE}/tickets", follow_redirects=False)
    assert asked.status_code == 303 and asked.headers["location"].startswith("/login?next=")
    for target, lands in (
        (f"/s/{SPACE}/tickets", f"/s/{SPACE}/tickets"),
        ("//evil.example", "/"),
        ("https://evil.example/", "/"),
    ):
        signed = client.post(
            "/login",
            data={"username": "developer-user", "password": PASSWORD, "next": target},
            follow_redirects=False,
        )
        assert signed.headers["location"] == lands
    wrong = client.post("/login", data={"username": "developer-user", "password": "nope"})
    assert wrong.status_code == 401 and "Wrong user name or password." in wrong.text


def test_the_language_chosen_is_remembered_for_the_user(world):
    client = browser(world, "owner")
    token = csrf_of(client)
    client.post("/language", data={"lang": "zh_CN", "back": "/account", "csrf": token})
    again = TestClient(
        create_app(world.settings, world.db, embedded_worker=False),
        headers={"Accept-Language": "en"},
    )
    again.post("/login", data={"username": "owner-user", "password": PASSWORD})
    assert "修改密码" in again.get("/account").text
    client.post("/language", data={"lang": "en", "back": "/", "csrf": csrf_of(client)})
    assert "Change password" in client.get("/account").text


def test_the_project_form_shows_schema_errors_at_their_fields_and_saves_valid_input(world):
    developer = browser(world, "master")  # what runs is a master's to change
    token = csrf_of(developer)
    form = {
        "csrf": token,
        "project": "webform",
        "repo": world.repo_url,
        "env.production.enabled": "1",
        "env.production.hosts": "127.0.150.201\n127.0.150.202:2222",
        "env.production.webroot": "relative/path",
        "env.production.releases": "/srv/rel/webform",
        "env.production.keep_releases": "1",
        "env.production.tasks.post_deploy": "make build\n",
        "env.production.compress": "1",
    }
    shown = developer.post(f"/s/{SPACE}/projects", data=form)
    assert shown.status_code == 422
    errors = dict(
        re.findall(
            r'name="(env\.production\.\w+)"[^>]*>(?:[^<]*</textarea>)?<span class="field-error"'
            r' role="alert">([^<]*)</span>',
            shown.text,
        )
    )
    assert set(errors) == {"env.production.webroot", "env.production.keep_releases"}
    assert "make build" in shown.text  # what was typed is kept
    form |= {"env.production.webroot": "/srv/www/webform", "env.production.keep_releases": "3"}
    saved = developer.post(f"/s/{SPACE}/projects", data=form, follow_redirects=False)
    assert saved.status_code == 303
    project, _ = project_service.get_project(world.db, world.actors["super"], f"{SPACE}:webform")
    env = project.config["environments"]["production"]
    assert env["hosts"] == ["127.0.150.201", "127.0.150.202:2222"] and env["keep_releases"] == 3
    assert env["tasks"]["post_deploy"] == "make build\n"
    exported = developer.get(f"/s/{SPACE}/projects/webform/export.yaml")
    assert "post_deploy: 'make build" in exported.text or "post_deploy: |" in exported.text


def test_the_ssh_check_names_the_fix_when_a_server_cannot_be_reached(world):
    master = browser(world, "master")
    token = csrf_of(master)
    master.post(
        f"/s/{SPACE}/servers",
        data={
            "csrf": token,
            "name": "ghost",
            "address": "127.0.0.1",
            "port": "1",
            "labels": "job-node, canary",
        },
    )
    listed = master.get(f"/s/{SPACE}/servers").text
    assert "job-node" in listed and "canary" in listed
    server_id = _group(r"/servers/(\d+)/check", listed)
    result = master.post(
        f"/s/{SPACE}/servers/{server_id}/check", headers={"X-CSRF-Token": token}
    ).json()
    assert result["ok"] is False and "firewall" in result["fix"]
    assert master.post(f"/s/{SPACE}/servers/{server_id}/check").status_code == 403


def test_the_dashboard_counts_deploys_per_day(world):
    world.deployed_ticket()  # one finished at least: the charts are drawn
    numbers = stats.deploy_stats(world.db, world.actors["super"], space=SPACE)
    master = browser(world, "master")
    shown = master.get(f"/s/{SPACE}/").text
    assert "Deploys per day" in shown and "<svg" in shown
    assert f"in all: {numbers['total']['deploys'] + numbers['total']['rollbacks']} " in shown


def test_the_dashboards_charts_say_each_value_on_hover(world):
    """Each bar of deploys per day and each dot of the duration trend carries its value as an
    SVG title, which the browser shows on hover (and a screen reader reads)."""
    world.deployed_ticket()
    shown = browser(world, "master").get(f"/s/{SPACE}/").text
    bars = re.findall(r'<rect class="bar [^>]*><title>([^<]+)</title></rect>', shown)
    assert bars and all(re.fullmatch(r"\S+: [0-9]+ .+", title) for title in bars), bars
    dots = re.findall(r'<circle class="dot" [^>]*><title>([^<]+)</title></circle>', shown)
    assert dots and all(title.strip() for title in dots), dots


def test_static_files_are_served_from_the_package(world):
    client = TestClient(create_app(world.settings, world.db, embedded_worker=False))
    for name in ("app.css", "app.js", "console.js"):
        assert client.get(f"/static/{name}").status_code == 200


def test_a_paused_gray_release_shows_its_batches_and_the_actions_each_role_may_take(world):
    deploy_id = world.paused_rollout()
    url = f"/s/{SPACE}/deploys/{deploy_id}"
    developer = browser(world, "developer")
    page = developer.get(url).text
    assert "Gray release" in page and "1 of 2 batches done" in page
    assert f"/deploys/{deploy_id}/rollout/continue" in page
    assert f"/deploys/{deploy_id}/rollout/rollback" not in page  # masters only
    master = browser(world, "master")
    assert f"/deploys/{deploy_id}/rollout/rollback" in master.get(url).text
    reporter = browser(world, "reporter")
    assert f"/deploys/{deploy_id}/rollout/continue" not in reporter.get(url).text
    refused = reporter.post(f"{url}/rollout/continue", data={"csrf": csrf_of(reporter)})
    assert refused.status_code == 403
    moved = developer.post(
        f"{url}/rollout/continue", data={"csrf": csrf_of(developer)}, follow_redirects=False
    )
    assert moved.status_code == 303
    from ferryman.services import deploy_views

    assert deploy_views.get(world.db, deploy_id)["status"] == "queued"


def test_the_servers_page_issues_a_pull_mode_install_one_liner_once(world):
    import base64

    master = browser(world, "master")
    token = csrf_of(master)
    master.post(
        f"/s/{SPACE}/servers", data={"csrf": token, "name": "puller", "address": "10.9.9.9"}
    )
    listed = master.get(f"/s/{SPACE}/servers").text
    server_id = _group(r"puller.*?/servers/(\d+)/agent", listed, re.S)
    shown = master.post(f"/s/{SPACE}/servers/{server_id}/agent", data={"csrf": token})
    command = _group(r'id="agent-command">([^<]+)</pre>', shown.text)
    script = base64.b64decode(command.split()[1]).decode()
    assert "fma_" in script and "/usr/local/bin/ferryman-agent" in script
    assert "ferryman-agent.timer" in script and "10.9.9.9" in script
    assert "fma_" not in master.get(f"/s/{SPACE}/servers").text  # shown once
    reporter = browser(world, "reporter")
    refused = reporter.post(
        f"/s/{SPACE}/servers/{server_id}/agent", data={"csrf": csrf_of(reporter)}
    )
    assert refused.status_code == 403


def test_masters_manage_notification_channels_in_the_browser_and_secrets_stay_hidden(world):
    master = browser(world, "master")
    token = csrf_of(master)
    saved = master.post(
        f"/s/{SPACE}/notify",
        data={
            "csrf": token,
            "name": "team-ding",
            "kind": "dingtalk",
            "language": "zh_CN",
            "settings": "url=https://oapi.dingtalk.com/robot/send?access_token=tok\nsecret=SECx",
            "events": ["deploy.failed", "ticket.submitted"],
            "enabled": "1",
        },
        follow_redirects=False,
    )
    assert saved.status_code == 303
    shown = master.get(f"/s/{SPACE}/notify").text
    assert "team-ding" in shown and "deploy.failed" in shown
    assert "SECx" not in shown and "access_token=tok" not in shown
    bad = master.post(
        f"/s/{SPACE}/notify", data={"csrf": token, "name": "x", "kind": "fax", "settings": ""}
    )
    assert bad.status_code == 422 and "kind" in bad.text
    channel_id = _group(r"/notify/(\d+)/test", shown)
    assert (
        master.post(
            f"/s/{SPACE}/notify/{channel_id}/test", data={"csrf": token}, follow_redirects=False
        ).status_code
        == 303
    )
    developer = browser(world, "developer")
    assert developer.get(f"/s/{SPACE}/notify").status_code == 403
    assert f"/s/{SPACE}/notify" not in developer.get(f"/s/{SPACE}/").text


def test_the_project_form_says_what_is_wrong_in_words_in_either_language(world):
    for language, expected in (("en", "write key: value lines here"), ("zh-CN", "key: value 形式")):
        master = browser(world, "master", language=language)
        form = {
            "csrf": csrf_of(master),
            "project": "plainwords",
            "repo": "not a url at all",
            "env.production.enabled": "1",
            "env.production.hosts": "127.0.150.203",
            "env.production.webroot": "/srv/www/plainwords",
            "env.production.releases": "/srv/rel/plainwords",
            "env.production.strategy": "just words",
        }
        shown = master.post(f"/s/{SPACE}/projects", data=form)
        assert shown.status_code == 422
        assert expected in shown.text, language
        for internal in ("Input should be", "instance of Strategy", "{v!r}", "required key"):
            assert internal not in shown.text, (language, internal)
        assert "just words" in shown.text and 'value="not a url at all"' in shown.text


def test_the_pages_name_a_favicon_and_the_browsers_own_request_finds_it(world):
    client = browser(world, "reporter")
    assert 'rel="icon" href="/static/favicon.svg"' in client.get(f"/s/{SPACE}/").text
    asked = client.get("/favicon.ico", follow_redirects=False)
    assert asked.status_code == 301 and asked.headers["location"] == "/static/favicon.svg"
    icon = client.get("/static/favicon.svg")
    assert icon.status_code == 200 and icon.text.startswith("<svg")


def test_the_new_ticket_form_lists_hosts_by_server_name_with_their_address(world):
    from ferryman.services import inventory

    name = project_service.get_project(world.db, world.actors["super"], int(world.new_project()))[
        0
    ].name
    servers = inventory.list_servers(world.db, world.actors["super"], SPACE)
    names = {x["name"] for x in servers if x["address"] == "127.0.0.1" and x["port"] == 1}
    page = browser(world, "developer").get(f"/s/{SPACE}/tickets/new?project={name}&env=production")
    shown = re.search(r'value="127.0.0.1:1" checked data-host> <strong>([^<]+)</strong>', page.text)
    assert shown and shown.group(1) in names


def test_the_project_form_is_in_sections_and_opens_a_folded_one_that_holds_an_error(world):
    master = browser(world, "master")
    blank = master.get(f"/s/{SPACE}/projects/new").text
    sections = re.findall(r'data-section="(\w+)" (open)?>', blank)
    order = ["hosts", "releases", "hooks", "gray", "pull", "advanced"]
    assert [s for s, _ in sections[:6]] == order
    assert dict(sections[:6]) == {
        "hosts": "open",
        "releases": "open",
        "hooks": "open",
        "gray": "open",
        "pull": "",
        "advanced": "",
    }
    assert '<select name="env.production.mode">' in blank
    shown = master.post(
        f"/s/{SPACE}/projects",
        data={
            "csrf": csrf_of(master),
            "project": "sections",
            "repo": world.repo_url,
            "env.production.enabled": "1",
            "env.production.hosts": "127.0.150.204",
            "env.production.webroot": "/srv/www/sections",
            "env.production.releases": "/srv/rel/sections",
            "env.production.connect_timeout": "-3",
        },
    )
    assert shown.status_code == 422
    assert re.search(r'data-section="advanced" open>', shown.text)
    assert 'name="env.production.connect_timeout" value="-3"' in shown.text


def test_a_start_time_typed_in_the_browsers_zone_is_kept_as_that_moment_in_utc(world):
    from ferryman.services import tickets

    name = project_service.get_project(world.db, world.actors["super"], int(world.new_project()))[
        0
    ].name
    dev = browser(world, "developer", language="zh-CN")
    made = dev.post(
        f"/s/{SPACE}/tickets",
        data={
            "csrf": csrf_of(dev),
            "project": name,
            "env": "production",
            "title": "at ten in Beijing",
            "ref": "v1",
            "all_hosts": "1",
            "not_before": "2030-01-01T10:00",
            "tz_offset": "-480",  # what Date.getTimezoneOffset() says at UTC+8
        },
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text[:300]
    ticket_id = int(made.headers["location"].rsplit("/", 1)[1])
    ticket = tickets.get_ticket(world.db, world.actors["super"], ticket_id)
    assert ticket["not_before"].startswith("2030-01-01T02:00:00")
    odd = dev.post(
        f"/s/{SPACE}/tickets",
        data={
            "csrf": csrf_of(dev),
            "project": name,
            "env": "production",
            "title": "nowhere",
            "ref": "v1",
            "all_hosts": "1",
            "not_before": "2030-01-01T10:00",
            "tz_offset": "99999",
        },
    )
    assert odd.status_code == 422 and 'value="nowhere"' in odd.text


def test_an_address_with_no_page_answers_a_page_with_the_navigation_and_the_api_json(world):
    client = browser(world, "super")
    shown = client.get("/no/such/page")
    assert shown.status_code == 404
    assert shown.headers["content-type"].startswith("text/html")
    assert "no page at /no/such/page" in shown.text
    assert "<nav" in shown.text  # the navigation stays, as on the other error pages
    api = client.get("/api/v1/no/such/operation")
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"


def test_a_refusal_from_the_services_is_shown_in_the_viewers_language(world):
    ticket = world.new_ticket()
    reporter = browser(world, "reporter", language="zh-CN")
    token = csrf_of(reporter)
    refused = reporter.post(
        f"/s/{SPACE}/tickets/{ticket}/approve", data={"csrf": token, "comment": "x"}
    )
    assert refused.status_code == 403
    assert "需要在空间" in refused.text and "你的角色是“观察者”" in refused.text, refused.text
    assert "needs the" not in refused.text
    missing = reporter.get(f"/s/{SPACE}/tickets/999999")
    assert missing.status_code == 404 and "找不到上线单 #999999" in missing.text
    # the API says the same refusal in English, as before
    api = reporter.post(f"/api/v1/tickets/{ticket}/approve", json={"comment": "x"})
    assert api.status_code in (401, 403)
    english = browser(world, "reporter")
    again = english.post(
        f"/s/{SPACE}/tickets/{ticket}/approve", data={"csrf": csrf_of(english), "comment": "x"}
    )
    assert "needs the master role or above in space" in again.text
