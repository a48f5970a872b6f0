"""An API refusal that Ferryman can say in another language carries its template and values
beside the English: a client (the Chinese UI, a script of a team in Shanghai) renders it from
its own catalogue — with the same values, never by matching the English text."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ferryman.app import create_app
from ferryman.web.i18n import translations
from tests.api.world import World, build_world, fresh

P = "/api/v1"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, TestClient]]:
    w = build_world(tmp_path_factory.mktemp("error-templates"))
    with TestClient(create_app(w.settings, w.db, embedded_worker=False)) as client:
        yield w, client


def _call(w: World, client: TestClient, who: str, method: str, url: str, body: Any = None) -> Any:
    return client.request(
        method, P + url, json=body, headers={"Authorization": f"Bearer {w.tokens[who]}"}
    )


def _render(lang: str, template: str, params: dict[str, Any]) -> str:
    """What a client does with an error: its catalogue's template, filled with the params
    (a param that is itself a message rendered first)."""
    values = {
        name: _render(lang, v["template"], v["params"]) if isinstance(v, dict) else v
        for name, v in params.items()
    }
    values = {k: ", ".join(map(str, v)) if isinstance(v, list) else v for k, v in values.items()}
    return translations(lang).gettext(template) % values


def _has_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def test_each_line_of_a_refused_project_file_carries_a_template_a_client_says_in_chinese(world):
    w, client = world
    config = w.config(fresh("tmpl"))
    config["environments"]["production"]["connect_timeout"] = 0
    config["environments"]["production"]["strategy"] = {"mode": "rolling", "batch": "lots"}
    refused = _call(w, client, "master", "POST", "/projects", config)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "config_invalid"
    assert error["template"] == "invalid project configuration" and error["params"] == {}
    assert _render("zh_CN", error["template"], error["params"]) != error["template"]
    items = error["details"]["errors"]
    assert len(items) >= 2
    for item in items:
        assert item["template"], item  # every line of a project file's refusal can be said
        # the template renders to exactly the English the API sends, for a client without a
        # catalogue too …
        assert _render("en", item["template"], item["params"]) == item["message"]
        # … and to Chinese, with the same values, from the catalogue
        zh = _render("zh_CN", item["template"], item["params"])
        assert _has_chinese(zh) and zh != item["message"], item
    located = {tuple(item["loc"]): item for item in items}
    assert ("environments", "production", "connect_timeout") in located


def test_a_refusal_made_of_another_message_nests_it_as_a_template_of_its_own(world):
    w, client = world
    missing = fresh("nothing")
    refused = _call(w, client, "super", "GET", f"/projects/{missing}")
    assert refused.status_code == 404
    error = refused.json()["error"]
    assert error["template"] == "no project %(name)s"
    assert error["params"] == {"name": repr(missing)}
    assert _render("zh_CN", error["template"], error["params"]).count(missing) == 1
    assert _has_chinese(_render("zh_CN", error["template"], error["params"]))


def test_a_message_nobody_can_say_in_another_language_has_no_template_key(world):
    w, client = world
    bad_query = _call(w, client, "developer", "GET", "/deploys?limit=lots")
    assert bad_query.status_code == 422
    error = bad_query.json()["error"]
    assert "template" not in error and "params" not in error
    assert all("template" not in item for item in error["details"]["errors"])


def test_the_openapi_document_declares_template_and_params_beside_the_message(world):
    _, client = world
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for name in ("ErrorBody", "ErrorItem"):
        properties = schemas[name]["properties"]
        assert {"message", "template", "params"} <= set(properties), name
        assert name == "ErrorItem" or "details" in properties
