"""What applying a project refuses — paths that overlap another environment's on a host,
servers and labels the space lacks, a copy onto a taken name or onto its own paths — reads
in Chinese in the Chinese UI (``said`` messages from the catalogue), while the English UI
and the API say the English text as before. Nothing refused is stored."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from ferryman.config.project import parse_project
from ferryman.db.models import Project, ProjectMember
from ferryman.errors import ConfigError
from ferryman.services import projects
from ferryman.services.audit import SYSTEM
from tests.api.world import SPACE, World, build_world, fresh
from tests.web.test_pages import browser, csrf_of

CHINESE = "zh-CN,zh;q=0.9"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("project-said"))


def _stored(w: World, name: str) -> dict[str, Any] | None:
    with w.db.read() as s:
        found = s.scalar(select(Project.config).where(Project.name == name))
        return dict(found) if found is not None else None


def _form(name: str, **env: str) -> dict[str, str]:
    fields = {"project": name, "repo": "ssh://git@127.0.0.1/x.git", "env.staging.enabled": "1"}
    return fields | {f"env.staging.{key}": value for key, value in env.items()}


def _text(response: Any) -> str:
    return str(response.text.replace("&#39;", "'"))


def test_a_project_whose_webroot_is_inside_anothers_on_the_same_host_is_refused_in_chinese(
    world,
):
    """``site``'s staging serves /srv/www/site on 127.0.0.2:1; the new project names that
    host another way (``[::ffff:127.0.0.2]``) and puts its webroot inside site's."""
    name, before = fresh("inside"), _stored(world, world.project)
    master = browser(world, "master", language=CHINESE)
    form = _form(
        name,
        hosts="[::ffff:127.0.0.2]:1",
        user="root",
        webroot="/srv/www/site/inner",
        releases=f"/srv/releases/{name}",
    )
    refused = master.post(f"/s/{SPACE}/projects", data={"csrf": csrf_of(master), **form})
    assert refused.status_code == 422
    text = _text(refused)
    assert (
        "在 127.0.0.2:1 上，网站根目录 /srv/www/site/inner 与项目 site（环境 staging）的"
        "网站根目录 /srv/www/site 重叠"
    ) in text, text
    assert "overlaps" not in text
    assert f'value="{name}"' in refused.text  # what was typed is kept
    assert _stored(world, name) is None and _stored(world, world.project) == before

    english = browser(world, "master")
    said = english.post(f"/s/{SPACE}/projects", data={"csrf": csrf_of(english), **form})
    assert said.status_code == 422
    line = (
        "webroot /srv/www/site/inner overlaps the webroot /srv/www/site of project site "
        "(environment staging) on 127.0.0.2:1"
    )
    assert line in _text(said)
    # the API, the CLI and the log read the same English, whole
    with pytest.raises(ConfigError) as caught:
        projects.apply_project(
            world.db,
            world.actors["master"],
            parse_project(
                {
                    "project": name,
                    "space": SPACE,
                    "repo": "ssh://git@127.0.0.1/x.git",
                    "environments": {
                        "staging": {
                            "hosts": ["[::ffff:127.0.0.2]:1"],
                            "user": "root",
                            "webroot": "/srv/www/site/inner",
                            "releases": f"/srv/releases/{name}",
                        }
                    },
                }
            ),
        )
    assert caught.value.message == (
        f"project {name}: paths overlap another environment's on the same host"
    )
    assert caught.value.errors == [f"environments/staging: {line}"]
    assert _stored(world, name) is None


def test_servers_and_labels_the_space_lacks_are_refused_in_chinese_at_their_fields(world):
    name = fresh("lacks")
    master = browser(world, "master", language=CHINESE)
    form = _form(
        name,
        servers="ghost-x",
        labels="role=nowhere",
        webroot=f"/srv/www/{name}",
        releases=f"/srv/releases/{name}",
    )
    refused = master.post(f"/s/{SPACE}/projects", data={"csrf": csrf_of(master), **form})
    assert refused.status_code == 422
    text = _text(refused)
    assert "没有服务器 'ghost-x'" in text, text
    assert "没有服务器同时带有标签 role=nowhere" in text, text
    assert "no server" not in text
    assert _stored(world, name) is None


def test_a_copy_onto_a_taken_name_or_onto_its_own_paths_is_refused_in_chinese(world):
    master = browser(world, "master", language=CHINESE)
    token = csrf_of(master)
    taken = projects.get_project(world.db, SYSTEM, int(world.new_project()))[0].name
    before = _stored(world, taken)
    onto = master.post(
        f"/s/{SPACE}/projects/{world.project}/copy", data={"csrf": token, "new_name": taken}
    )
    assert onto.status_code == 409
    assert f"空间 {SPACE} 已有项目 '{taken}'" in _text(onto), onto.text
    assert _stored(world, taken) == before

    # a project whose paths do not name it: its copy would keep them, on the same hosts
    plain = fresh("plain")
    config = world.config(plain)
    for env in config["environments"].values():
        env["webroot"], env["releases"] = f"/srv/www/common-{plain}", f"/srv/r/common-{plain}"
    projects.apply_project(world.db, SYSTEM, parse_project(config))
    twin = fresh("twin")
    same = master.post(f"/s/{SPACE}/projects/{plain}/copy", data={"csrf": token, "new_name": twin})
    assert same.status_code == 422
    text = _text(same)
    assert f"项目 {twin}：路径与同一主机上另一个环境的路径重叠" in text, text
    assert f"网站根目录 /srv/www/common-{plain} 与项目 {plain}（环境 production）的" in text
    assert "overlap" not in text
    assert _stored(world, twin) is None


def test_a_project_role_override_for_a_stranger_or_one_never_set_is_refused_in_chinese(world):
    def overrides() -> int:
        with world.db.read() as s:
            return len(list(s.scalars(select(ProjectMember))))

    before = overrides()
    owner = browser(world, "owner", language=CHINESE)
    token = csrf_of(owner)
    url = f"/s/{SPACE}/projects/{world.project}/members"
    stranger = world.actors["other"].username  # an owner of another space only
    refused = owner.post(url, data={"csrf": token, "username": stranger, "role": "master"})
    assert refused.status_code == 404
    assert f"{stranger} 不是该项目所在空间的成员" in _text(refused), refused.text
    developer = world.actors["developer"].username
    never = owner.post(url, data={"csrf": token, "username": developer, "role": ""})
    assert never.status_code == 404
    assert f"{developer} 在 {world.project} 上没有单独设置的角色" in _text(never), never.text
    assert "is not a member" not in _text(refused) and "no override" not in _text(never)
    assert overrides() == before


def test_what_a_master_may_not_ask_for_reads_in_chinese_and_nothing_is_stored(world):
    """A wait longer than the space allows and a path on the deploy host (a superuser's
    setting): each line at its field, in Chinese; the English UI keeps the English."""
    name = fresh("policy")
    form = _form(
        name,
        hosts="127.0.0.2:1",
        user="root",
        webroot=f"/srv/www/{name}",
        releases=f"/srv/releases/{name}",
        task_timeout="7200",
        ssh_key="/root/.ssh/id_ed25519",
    )
    master = browser(world, "master", language=CHINESE)
    refused = master.post(f"/s/{SPACE}/projects", data={"csrf": csrf_of(master), **form})
    assert refused.status_code == 422
    text = _text(refused)
    assert "7200 秒超过了空间 'acme' 允许的上限（3600 秒）" in text, text
    assert "部署机上的路径只能由超级管理员设置" in text, text
    assert "is more than space" not in text and "superuser's setting" not in text
    assert _stored(world, name) is None

    english = browser(world, "master")
    said = _text(english.post(f"/s/{SPACE}/projects", data={"csrf": csrf_of(english), **form}))
    assert "7200s is more than space 'acme' allows (3600s)" in said
    assert "a path on the deploy host is a superuser's setting" in said
    assert _stored(world, name) is None
