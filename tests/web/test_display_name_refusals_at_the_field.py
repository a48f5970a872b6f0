"""A display name is entered in the browser on the project form and the new-space form: one
with a control character, a line separator or a bidirectional override is refused at its
field, in the viewer's language (Chinese here, English beside it), with what was typed kept
and nothing saved; a good one in any script is saved and shown."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest

from ferryman.services import projects, spaces
from ferryman.services.audit import SYSTEM
from tests.api.world import SPACE, fresh
from tests.web.test_config_refusals_in_chinese import (
    CHINESE,
    Case,
    _english,
    _errors,
    _form,
    chinese,
    english,
    world,
)
from tests.web.test_pages import browser, csrf_of

__all__ = ["chinese", "english", "world"]  # the module's fixtures, shared

HAN = re.compile(r"[\u4e00-\u9fff]")
BAD = {
    "bidi override": ("Shop\u202etxt.exe", "U+202E"),
    "line separator": ("两行\u2028名称", "U+2028"),
    "control": ("tab\there", "U+0009"),
}


def _project_form(name: str, display_name: str) -> dict[str, str]:
    return _form(name, Case("display", {}, "display_name", "", "")) | {"display_name": display_name}


@pytest.mark.parametrize("bad", sorted(BAD))
def test_a_projects_bad_display_name_is_refused_in_chinese_at_its_field(world, chinese, bad):
    client, token = chinese
    typed, char = BAD[bad]
    name = fresh("dn")
    refused = client.post(
        f"/s/{SPACE}/projects", data={"csrf": token, **_project_form(name, typed)}
    )
    assert refused.status_code == 422, refused.text[:500]
    at = _errors(refused.text).get("display_name", "")
    assert "不能包含控制字符、换行符或文字方向控制符" in at and char in at, at
    assert not _english(at.replace("display_name", "")), at
    assert re.search(r'name="display_name"[^>]*aria-invalid="true"', refused.text)
    assert f'value="{html.escape(typed)}"' in refused.text  # what was typed stays
    assert name not in [p["name"] for p in projects.list_projects(world.db, SYSTEM, SPACE)]


def test_the_english_ui_refuses_a_projects_bad_display_name_in_english(world, english):
    client, token = english
    refused = client.post(
        f"/s/{SPACE}/projects",
        data={"csrf": token, **_project_form(fresh("dn"), "Shop\u202etxt")},
    )
    assert refused.status_code == 422
    at = _errors(refused.text).get("display_name", "")
    assert "no control characters, line breaks or direction overrides (found U+202E)" in at
    assert not HAN.search(at)


def test_a_project_saved_with_a_display_name_shows_it_and_the_form_gives_it_back(world, chinese):
    client, token = chinese
    name = fresh("dn")
    saved = client.post(
        f"/s/{SPACE}/projects",
        data={"csrf": token, **_project_form(name, "  兼容-测试-1.0 ")},
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text[:500]
    page = client.get(f"/s/{SPACE}/projects/{name}").text
    assert f"<h1>兼容-测试-1.0 <small><code>{name}</code>" in page
    form = client.get(f"/s/{SPACE}/projects/{name}/edit").text
    assert re.search(r'name="display_name"[^>]*value="兼容-测试-1.0"', form)


@pytest.fixture(scope="module")
def superuser(world: Any) -> tuple[Any, str]:
    client = browser(world, "super", language=CHINESE)
    return client, csrf_of(client)


@pytest.mark.parametrize("bad", sorted(BAD))
def test_a_new_spaces_bad_display_name_is_refused_in_chinese_at_its_field(world, superuser, bad):
    client, token = superuser
    typed, char = BAD[bad]
    name = fresh("sp")
    refused = client.post(
        "/spaces", data={"csrf": token, "name": name, "display_name": typed, "description": ""}
    )
    assert refused.status_code == 422, refused.text[:500]
    at = _errors(refused.text).get("display_name", "")
    assert "不能包含控制字符、换行符或文字方向控制符" in at and char in at, at
    assert re.search(r'name="display_name"[^>]*aria-invalid="true"', refused.text)
    assert f'value="{html.escape(typed)}"' in refused.text
    assert "name" not in _errors(refused.text)  # the name was fine: no error there
    assert name not in [s["name"] for s in spaces.list_spaces(world.db, SYSTEM)]


def test_a_new_space_with_a_display_name_is_listed_by_it(world, superuser):
    client, token = superuser
    name = fresh("sp")
    made = client.post(
        "/spaces",
        data={"csrf": token, "name": name, "display_name": "演示空间", "description": ""},
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text[:500]
    listed = client.get("/spaces").text
    assert f'<a href="/s/{name}/">演示空间</a> <code class="muted">{name}</code>' in listed
