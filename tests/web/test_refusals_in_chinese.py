"""Service refusals a web user meets most — the server, project, environment and ticket
forms, a member or group form, and the "no space" page — read in the viewer's language
(``said`` messages from the catalogue); the English UI says what the API says."""

from __future__ import annotations

import pytest

from tests.api.world import SPACE, World, build_world
from tests.web.test_pages import browser, csrf_of

CHINESE = "zh-CN,zh;q=0.9"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("said"))


def test_a_bad_server_name_and_address_read_in_chinese_and_keep_what_was_typed(world):
    master = browser(world, "master", language=CHINESE)
    token = csrf_of(master)
    bad = master.post(
        f"/s/{SPACE}/servers",
        data={"csrf": token, "name": "web 1", "address": "127.0.140.9", "labels": "edge"},
    )
    assert bad.status_code == 422
    assert "无效的服务器名 'web 1'：请使用 1-64 个字母" in bad.text.replace("&#39;", "'")
    assert 'value="web 1"' in bad.text and "edge" in bad.text
    address = master.post(
        f"/s/{SPACE}/servers", data={"csrf": token, "name": "web1", "address": "-oProxy"}
    )
    assert address.status_code == 422
    assert "不是有效的主机：'-oProxy'" in address.text.replace("&#39;", "'")
    english_browser = browser(world, "master")
    english = english_browser.post(
        f"/s/{SPACE}/servers",
        data={"csrf": csrf_of(english_browser), "name": "web 1", "address": "127.0.140.9"},
    )
    # the English page says what the API says (a Said is the same English text)
    assert "invalid server name &#39;web 1&#39;: use 1-64 letters" in english.text


def test_a_space_the_viewer_cannot_see_is_said_in_chinese(world):
    shown = browser(world, "developer", language=CHINESE).get("/s/nowhere-x/")
    assert shown.status_code == 404
    assert "没有空间 'nowhere-x'" in shown.text.replace("&#39;", "'")
    english = browser(world, "developer").get("/s/nowhere-x/")
    assert "no space &#39;nowhere-x&#39;" in english.text


def test_project_form_errors_read_in_chinese_at_their_fields(world):
    master = browser(world, "master", language=CHINESE)
    token = csrf_of(master)
    bad = master.post(
        f"/s/{SPACE}/projects",
        data={
            "csrf": token,
            "project": "my app",
            "repo": "ftp:x",
            "env.staging.enabled": "1",
            "env.staging.hosts": "-x",
            "env.staging.webroot": "relative/www",
            "env.staging.releases": "/srv/releases/app",
        },
    )
    assert bad.status_code == 422
    text = bad.text.replace("&#39;", "'")
    assert "无效的名称 'my app'" in text
    assert "不是仓库地址：'ftp:x'（请使用 ssh://" in text
    assert "不是有效的主机：'-x'" in text
    assert "无效的路径 'relative/www'：必须是绝对路径" in text
    assert "invalid name" not in text and "invalid path" not in text and "not a host" not in text
    assert 'value="my app"' in bad.text and 'value="ftp:x"' in bad.text


def test_environment_form_errors_read_in_chinese(world):
    master = browser(world, "master", language=CHINESE)
    token = csrf_of(master)
    url = f"/s/{SPACE}/environments"
    bad = master.post(
        url,
        data={"csrf": token, "form_id": "new", "name": "qa-said", "variables": "no equals"},
    )
    assert bad.status_code == 422 and "第 1 行：请写成 名称=值" in bad.text
    reserved = master.post(
        url,
        data={"csrf": token, "form_id": "new", "name": "qa-said", "variables": "1BAD=x"},
    )
    assert reserved.status_code == 422 and "变量 1BAD：不是合法的变量名" in reserved.text
    assert "no equals" not in reserved.text and "1BAD=x" in reserved.text
    taken = master.post(url, data={"csrf": token, "form_id": "new", "name": "production"})
    assert taken.status_code == 409
    assert f"空间 {SPACE} 已有环境 'production'" in taken.text.replace("&#39;", "'")


def test_a_bad_ref_on_the_ticket_form_reads_in_chinese(world):
    developer = browser(world, "developer", language=CHINESE)
    token = csrf_of(developer)
    bad = developer.post(
        f"/s/{SPACE}/tickets",
        data={"csrf": token, "project": world.project, "env": "staging", "ref": "-v1"},
    )
    assert bad.status_code == 422
    assert "无效的版本引用 '-v1'：不能以 '-' 开头" in bad.text.replace("&#39;", "'")


def test_inviting_an_unknown_user_reads_in_chinese(world):
    owner = browser(world, "owner", language=CHINESE)
    token = csrf_of(owner)
    bad = owner.post(
        f"/s/{SPACE}/members", data={"csrf": token, "username": "ghost-x", "role": "developer"}
    )
    assert bad.status_code == 404
    text = bad.text.replace("&#39;", "'")
    assert "没有用户 'ghost-x'" in text and 'value="ghost-x"' in text


def test_a_ticket_without_a_title_reads_in_chinese(world):
    developer = browser(world, "developer", language=CHINESE)
    token = csrf_of(developer)
    bad = developer.post(
        f"/s/{SPACE}/tickets",
        data={"csrf": token, "project": world.project, "env": "staging", "ref": "v1"},
    )
    assert bad.status_code == 422 and "标题：必填" in bad.text
