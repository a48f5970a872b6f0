"""Renaming a space in the browser: an owner or a superuser changes its display name through
the service the API's ``PATCH /spaces/{space}`` calls (``space.manage``, one audit row), with
the session's CSRF token. Everyone else is refused as the API refuses them — a developer, a
reporter or a master of the space (403) and an owner of another space (404, as if it did not
exist) — and the stored name stays what it was. A control character (C0 or C1) or a name over
100 characters is refused at the field, in the viewer's language, with what was typed kept;
HTML in a display name is shown as text on every page that shows it."""

from __future__ import annotations

import html
import re

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import select

from ferryman.app import create_app
from ferryman.db.models import AuditEntry, Space
from ferryman.services import spaces
from ferryman.services.audit import SYSTEM
from tests.api.world import SPACE, World, build_world
from tests.web.test_pages import browser, csrf_of

CHINESE = "zh-CN,zh;q=0.9"
URL = f"/spaces/{SPACE}/rename"
FIELD_ERROR = re.compile(r'<span class="field-error" id="display-name-error" role="alert">([^<]*)<')


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("rename"))


def stored(world: World, name: str = SPACE) -> str:
    with world.db.read() as s:
        shown = s.scalar(select(Space.display_name).where(Space.name == name))
    assert shown is not None, name
    return shown


def named(world: World, display_name: str, name: str = SPACE) -> None:
    spaces.update_space(world.db, SYSTEM, name, display_name=display_name)
    assert stored(world, name) == display_name


def field_error(text: str) -> str:
    found = FIELD_ERROR.search(text)
    assert found is not None, "no error at the display name field"
    return html.unescape(found.group(1))


def test_an_owner_renames_their_space_and_the_audit_log_keeps_before_and_after(world):
    named(world, "Acme web")
    owner = browser(world, "owner")
    form = owner.get(URL)
    assert form.status_code == 200
    assert re.search(r'name="display_name" value="Acme web"', form.text)
    renamed = owner.post(
        URL,
        data={"csrf": csrf_of(owner, URL), "display_name": "  Acme 网店  "},
        follow_redirects=False,
    )
    assert renamed.status_code == 303 and renamed.headers["location"] == "/spaces"
    assert stored(world) == "Acme 网店"  # surrounding spaces dropped, as the API does
    listed = owner.get("/spaces").text
    assert "Space acme is now shown as Acme 网店." in listed
    assert f'<a href="/s/{SPACE}/">Acme 网店</a> <code class="muted">{SPACE}</code>' in listed
    with world.db.read() as s:
        entry = s.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "space.update", AuditEntry.target == f"space:{SPACE}")
            .order_by(AuditEntry.id.desc())
        ).first()
    assert entry is not None and entry.actor == world.actors["owner"].username
    assert entry.detail["before"]["display_name"] == "Acme web"
    assert entry.detail["after"]["display_name"] == "Acme 网店"


def test_a_superuser_clears_a_display_name_and_the_space_is_shown_by_its_name(world):
    named(world, "Something")
    admin = browser(world, "super", language=CHINESE)
    cleared = admin.post(
        URL, data={"csrf": csrf_of(admin, URL), "display_name": ""}, follow_redirects=False
    )
    assert cleared.status_code == 303
    assert stored(world) == ""
    listed = admin.get("/spaces").text
    assert f'<a href="/s/{SPACE}/">{SPACE}</a></td>' in listed
    assert "空间 acme 重新按名称显示。" in listed


@pytest.mark.parametrize("role", ["developer", "reporter", "master"])
def test_a_member_below_owner_can_neither_open_nor_post_the_rename_form(world, role):
    named(world, "Kept")
    member = browser(world, role)
    assert member.get(URL).status_code == 403
    assert f'href="{URL}"' not in member.get("/spaces").text  # no link to a refused form
    refused = member.post(URL, data={"csrf": csrf_of(member), "display_name": "Taken over"})
    assert refused.status_code == 403
    assert 'class="main"' in refused.text  # the refusal keeps the navigation
    assert stored(world) == "Kept"


def test_an_owner_of_another_space_is_told_the_space_does_not_exist(world):
    named(world, "Kept")
    stranger = browser(world, "other")  # owner of the space "other", not of acme
    assert stranger.get(URL).status_code == 404
    refused = stranger.post(URL, data={"csrf": csrf_of(stranger), "display_name": "Mine now"})
    assert refused.status_code == 404
    assert "Kept" not in refused.text
    assert stored(world) == "Kept"
    assert stored(world, "other") == ""  # and their own space is untouched


@pytest.mark.parametrize("role", ["developer", "reporter", "master", "other", "owner"])
def test_the_page_refuses_each_role_as_the_api_does(world, role):
    named(world, "Kept")
    api = TestClient(create_app(world.settings, world.db, embedded_worker=False))
    answer = api.patch(
        f"/api/v1/spaces/{SPACE}",
        json={"display_name": "By API"},
        headers={"Authorization": f"Bearer {world.tokens[role]}"},
    )
    named(world, "Kept")
    client = browser(world, role)
    posted = client.post(URL, data={"csrf": csrf_of(client), "display_name": "By page"})
    assert (posted.status_code, answer.status_code) in ((200, 200), (403, 403), (404, 404))
    assert stored(world) == ("By page" if role == "owner" else "Kept")


def test_a_rename_posted_without_the_sessions_csrf_token_is_refused(world):
    named(world, "Kept")
    owner = browser(world, "owner")
    forged = owner.post(URL, data={"csrf": "forged", "display_name": "Forged"})
    assert forged.status_code == 403
    missing = owner.post(URL, data={"display_name": "Forged"})
    assert missing.status_code == 403  # no token at all is refused as a wrong one
    assert stored(world) == "Kept"


CONTROL = {
    "C0 bell": ("Acme\x07shop", "U+0007"),
    "C0 escape": ("Acme\x1b[31mred", "U+001B"),
    "C1 next line": ("Acme\x85shop", "U+0085"),
    "C1 control sequence introducer": ("Acme\x9b31mred", "U+009B"),
    "delete": ("Acme\x7f", "U+007F"),
}


@pytest.mark.parametrize("case", sorted(CONTROL))
def test_a_control_character_is_refused_at_the_field_in_english_and_chinese(world, case):
    typed, char = CONTROL[case]
    named(world, "Kept")
    for language, said in (
        ("en", f"no control characters, line breaks or direction overrides (found {char})"),
        (CHINESE, f"不能包含控制字符、换行符或文字方向控制符（发现 {char}）"),
    ):
        owner = browser(world, "owner", language=language)
        refused = owner.post(URL, data={"csrf": csrf_of(owner, URL), "display_name": typed})
        assert refused.status_code == 422, refused.text[:300]
        assert said in field_error(refused.text)
        assert "display_name" not in field_error(refused.text)  # the field says which
        assert re.search(r'name="display_name"[^>]*aria-invalid="true"', refused.text)
        assert f'name="display_name" value="{html.escape(typed)}"' in refused.text  # kept
        assert stored(world) == "Kept"


def test_a_name_over_100_characters_is_refused_at_the_field_in_english_and_chinese(world):
    named(world, "Kept")
    long = "名" * 101
    for language, said in (
        ("en", "at most 100 characters (this one has 101)"),
        (CHINESE, "最多 100 个字符（当前有 101 个）"),
    ):
        owner = browser(world, "owner", language=language)
        refused = owner.post(URL, data={"csrf": csrf_of(owner, URL), "display_name": long})
        assert refused.status_code == 422
        assert said in field_error(refused.text)
        assert f'value="{long}"' in refused.text
    assert stored(world) == "Kept"
    exactly = browser(world, "owner")
    saved = exactly.post(
        URL, data={"csrf": csrf_of(exactly), "display_name": "名" * 100}, follow_redirects=False
    )
    assert saved.status_code == 303 and stored(world) == "名" * 100


SPACE_PAGES = (
    "projects",
    "tickets",
    "deploys",
    "servers",
    "environments",
    "members",
    "notify",
    "audit",
)
MARKUP = '<img src=x onerror="alert(1)"><b>Shop</b> & co'


def test_html_in_a_display_name_is_shown_as_text_on_every_page_that_shows_it(world):
    owner = browser(world, "owner")
    renamed = owner.post(URL, data={"csrf": csrf_of(owner, URL), "display_name": MARKUP})
    assert renamed.status_code == 200  # followed to the list
    assert stored(world) == MARKUP
    escaped = str(escape(MARKUP))  # as Jinja writes it
    pages = {
        "list and flash": "/spaces",
        "dashboard": f"/s/{SPACE}/",
        "rename form": URL,
        **{page: f"/s/{SPACE}/{page}" for page in SPACE_PAGES},
    }
    for what, url in pages.items():
        text = owner.get(url).text
        assert "<img" not in text and "<b>Shop" not in text, what
        option = re.search(rf'<option value="{SPACE}"[^>]*>([^<]*)</option>', text)
        assert option is not None and html.unescape(option.group(1)) == MARKUP, what  # the nav
        assert escaped in text, what
        if what in SPACE_PAGES or what == "dashboard":  # the heading names the space
            assert (
                f"<small>{escaped}</small></h1>" in text or f"<small>{escaped}</small>\n" in text
            ), what
    title = re.search(r"<title>([^<]*)</title>", owner.get(f"/s/{SPACE}/").text)
    assert title is not None and html.unescape(title.group(1)) == f"Dashboard · {MARKUP} · Ferryman"
    form = owner.get(URL).text
    title = re.search(r"<title>([^<]*)</title>", form)
    assert title is not None and html.unescape(title.group(1)) == f"Rename {MARKUP} · Ferryman"
    assert f'value="{escaped}"' in form
    named(world, "")
