"""Display names in any script beside the ASCII slug: a space's and a project's, set through
the API and the project YAML, stored and shown; hostile names (control characters, line
breaks, direction overrides, too long) refused with a clear 422 and nothing changed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ferryman.app import create_app
from tests.api.world import SPACE, World, build_world, fresh

P = "/api/v1"
NAME = "兼容-测试-1.0"
HOSTILE = ["a\x00b", "line\nbreak", "admin\u202egnp.exe", "x" * 101, "\x1b[2Jcleared"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, TestClient]]:
    w = build_world(tmp_path_factory.mktemp("display-names"))
    with TestClient(create_app(w.settings, w.db, embedded_worker=False)) as client:
        yield w, client


def _call(w: World, client: TestClient, who: str, method: str, url: str, body: Any = None) -> Any:
    return client.request(
        method, P + url, json=body, headers={"Authorization": f"Bearer {w.tokens[who]}"}
    )


def test_a_space_keeps_a_display_name_in_any_script_beside_its_slug(world):
    w, client = world
    slug = fresh("space")
    made = _call(w, client, "super", "POST", "/spaces", {"name": slug, "display_name": NAME})
    assert made.status_code == 201, made.text
    assert made.json()["name"] == slug and made.json()["display_name"] == NAME
    assert _call(w, client, "super", "GET", f"/spaces/{slug}").json()["display_name"] == NAME
    listed = {
        s["name"]: s["display_name"] for s in _call(w, client, "super", "GET", "/spaces").json()
    }
    assert listed[slug] == NAME and listed[SPACE] == ""
    renamed = _call(w, client, "owner", "PATCH", f"/spaces/{SPACE}", {"display_name": " 顶点 "})
    assert renamed.status_code == 200 and renamed.json()["display_name"] == "顶点"
    assert (
        _call(
            w, client, "developer", "PATCH", f"/spaces/{SPACE}", {"display_name": "x"}
        ).status_code
        == 403
    )
    assert _call(w, client, "super", "GET", f"/spaces/{SPACE}").json()["display_name"] == "顶点"


@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_hostile_space_display_name_is_refused_and_nothing_changes(world, hostile):
    w, client = world
    before = _call(w, client, "super", "GET", f"/spaces/{SPACE}").json()["display_name"]
    refused = _call(w, client, "owner", "PATCH", f"/spaces/{SPACE}", {"display_name": hostile})
    assert refused.status_code == 422 and "display_name" in refused.text
    assert _call(w, client, "super", "GET", f"/spaces/{SPACE}").json()["display_name"] == before
    slug = fresh("space")
    made = _call(w, client, "super", "POST", "/spaces", {"name": slug, "display_name": hostile})
    assert made.status_code == 422
    assert _call(w, client, "super", "GET", f"/spaces/{slug}").status_code == 404


def test_a_project_display_name_comes_from_its_yaml_and_is_shown(world):
    w, client = world
    config = {**w.config(fresh("proj")), "display_name": NAME}
    applied = _call(w, client, "master", "POST", "/projects", config)
    assert applied.status_code == 200, applied.text
    assert applied.json()["display_name"] == NAME
    project = applied.json()["id"]
    assert (
        _call(w, client, "reporter", "GET", f"/projects/{project}").json()["display_name"] == NAME
    )
    listed = _call(w, client, "reporter", "GET", f"/projects?space={SPACE}").json()
    assert {p["id"]: p["display_name"] for p in listed}[project] == NAME
    # changed, then dropped: the slug is shown again
    assert (
        _call(
            w, client, "master", "POST", "/projects", {**config, "display_name": "新名字"}
        ).json()["display_name"]
        == "新名字"
    )
    config.pop("display_name")
    assert _call(w, client, "master", "POST", "/projects", config).json()["display_name"] == ""


@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_hostile_project_display_name_is_refused_naming_the_key(world, hostile):
    w, client = world
    name = fresh("proj")
    refused = _call(
        w, client, "master", "POST", "/projects", {**w.config(name), "display_name": hostile}
    )
    assert refused.status_code == 422, refused.text
    assert "display_name" in refused.text
    assert _call(w, client, "master", "GET", f"/projects/{SPACE}:{name}").status_code == 404
