"""Issue 17's last English in the Chinese UI: a notification channel's refusals (its kind,
events, language and settings: ``services/notifications.py``), the refusals of a canary
metric's ``query`` and ``compare`` (``domain/analysis.py``) and a delivery's failure that
Ferryman wrote (a refused destination) read in Chinese, at their field, with their values; the
English UI says the English it said before. Each refusal is posted through the real form of
a server app (a signed-in master's browser session); every destination is on loopback and
none is contacted."""

from __future__ import annotations

import asyncio
import html
import re
from dataclasses import replace
from typing import Any

import pytest

from ferryman.notify import dispatcher
from ferryman.outbound import parse_allow
from ferryman.services import notifications
from ferryman.services.audit import SYSTEM
from tests.api.world import SPACE, fresh
from tests.conftest import NET
from tests.outbound_policy import allow_outbound
from tests.web.test_config_refusals_in_chinese import (
    LEFTOVERS,
    Case,
    _english,
    _error_text,
    _errors,
    _form,
    chinese,
    english,
    world,
)

__all__ = ["chinese", "english", "world"]  # the module's fixtures, shared

HAN = re.compile(r"[\u4e00-\u9fff]")


def _channel(name: str, **fields: str) -> dict[str, str]:
    return {"name": name, "kind": "webhook", "language": "en", "settings": "url=ftp://x/"} | fields


def _post(client: Any, token: str, form: dict[str, str], events: tuple[str, ...] = ()) -> Any:
    data: dict[str, Any] = {"csrf": token, **form, "events": list(events)}
    return client.post(f"/s/{SPACE}/notify", data=data)


def _events_error(page: str) -> str:
    found = re.search(
        r'<fieldset aria-invalid="true">[\s\S]*?'
        r'<span class="field-error" role="alert">([\s\S]*?)</span>\s*</fieldset>',
        page,
    )
    return html.unescape(found.group(1)) if found else ""


CHANNEL_CASES: list[tuple[str, dict[str, str], tuple[str, ...], str, str, str]] = [
    # (id, form fields, events ticked, the field, Chinese, English)
    ("kind", {"kind": "pigeon"}, (), "kind", "须为以下之一：", "kind: one of "),
    ("language", {"language": "fr"}, (), "language", "须为 en 或 zh_CN", "language: en or zh_CN"),
    (
        "settings",
        {},
        (),
        "settings",
        "url: 须为 http(s) 地址",
        "url: an http(s) URL",
    ),
]


@pytest.mark.parametrize(("id_", "form", "events", "at", "zh", "en"), CHANNEL_CASES)
def test_a_bad_channel_is_refused_in_chinese_at_its_field(
    world, chinese, id_, form, events, at, zh, en
):
    client, token = chinese
    refused = _post(client, token, _channel(fresh(id_)) | form, events)
    assert refused.status_code == 422, refused.text[:500]
    errors = _errors(refused.text)
    assert zh in errors.get(at, ""), (at, errors)
    said = _error_text(refused.text)
    assert said and not _english(said.replace("zh_CN", "")), said
    assert not any(left in said for left in LEFTOVERS), said
    assert ">url=ftp://x/</textarea>" in refused.text  # what was typed stays


def test_an_unknown_event_is_refused_in_chinese_below_the_events_with_the_ticks_kept(
    world, chinese
):
    client, token = chinese
    refused = _post(client, token, _channel(fresh("ev")), ("deploy.failed", "deploy.exploded"))
    assert refused.status_code == 422
    said = _events_error(refused.text)
    assert "未知事件 deploy.exploded" in said, said
    assert HAN.search(said) and "unknown" not in said and "known:" not in said
    assert re.search(r'value="deploy.failed" checked', refused.text)  # what was ticked stays


@pytest.mark.parametrize(("id_", "form", "events", "at", "zh", "en"), CHANNEL_CASES)
def test_the_english_ui_refuses_a_bad_channel_in_english(
    world, english, id_, form, events, at, zh, en
):
    client, token = english
    refused = _post(client, token, _channel(fresh(id_)) | form, events)
    assert refused.status_code == 422
    assert en in _errors(refused.text).get(at, ""), _errors(refused.text)
    assert not HAN.search(_error_text(refused.text))


def test_a_refused_channel_saves_nothing(world, chinese):
    client, token = chinese
    name = fresh("none")
    _post(client, token, _channel(name, kind="pigeon"))
    assert name not in [c["name"] for c in notifications.list_channels(world.db, SYSTEM, SPACE)]


# --- a delivery's failure, said by Ferryman --------------------------------------------------


def test_a_delivery_refused_by_ferryman_reads_in_chinese_and_the_api_keeps_the_english(
    world, chinese, english
):
    """The channel was saved while loopback was allowed; the policy changed since: the
    dispatcher refuses the destination (nothing is contacted) and records why. The Chinese
    page says it in Chinese, with the address; the English page and the API say the English."""
    address = f"{NET}.209"
    allow_outbound(world.db, parse_allow(f"{address}/32"))
    try:
        made = notifications.save_channel(
            world.db, SYSTEM, SPACE, fresh("gone"), "webhook", {"url": f"http://{address}:9/"}
        )
    finally:
        allow_outbound(world.db, ())
    notifications.test_channel(world.db, SYSTEM, made["id"])
    strict = replace(world.settings, outbound_allow=())  # the policy now: no internal address
    asyncio.run(dispatcher.deliver_due(world.db, strict))
    history = notifications.deliveries(world.db, SYSTEM, made["id"])[0]["history"]
    assert history and "a loopback address; internal destinations are refused" in str(
        history[0]["error"]
    )
    client, _token = chinese
    shown = client.get(f"/s/{SPACE}/notify").text
    row = shown[shown.index(f"<h2>{made['name']} ") :]
    row = html.unescape(row[: row.index("</section>")])
    assert "内部地址一律拒绝" in row and address in row, row
    assert "internal destinations" not in row
    client, _token = english
    row = client.get(f"/s/{SPACE}/notify").text
    row = html.unescape(row[row.index(f"<h2>{made['name']} ") :])
    assert "a loopback address; internal destinations are refused" in row[: row.index("</section>")]
    notifications.delete_channel(world.db, SYSTEM, made["id"])


# --- a canary metric's query and compare (the project form's gray release) -------------------


def _strategy(
    query: str = 'up{instance=~"{HOSTS_RE}"}', compare: str = "canary <= baseline"
) -> str:
    return (
        "canary: 1\nanalysis:\n"
        "  prometheus: http://127.0.0.1:9090\n"
        "  interval: 30s\n  duration: 5m\n"
        "  metrics:\n"
        "    - name: errors\n"
        f"      query: '{query}'\n"
        f"      compare: '{compare}'\n"
    )


STRATEGY = "env.staging.strategy"
ANALYSIS_CASES = [
    Case(
        "compare without a comparison",
        {"strategy": _strategy(compare="canary")},
        STRATEGY,
        "compare: 须恰好有一个比较运算符",
        "compare: exactly one comparison",
    ),
    Case(
        "compare without canary",
        {"strategy": _strategy(compare="baseline <= 1")},
        STRATEGY,
        "compare: 必须包含 canary",
        "compare: it must name canary (what is judged)",
    ),
    Case(
        "compare unknown name",
        {"strategy": _strategy(compare="canary <= nope")},
        STRATEGY,
        "compare: 未知名称 'nope'",
        "compare: unknown name 'nope' (only canary and baseline)",
    ),
    Case(
        "compare unclosed",
        {"strategy": _strategy(compare="canary <= (baseline")},
        STRATEGY,
        "compare: 有未闭合的 (",
        "compare: a ( is not closed",
    ),
    Case(
        "compare too early",
        {"strategy": _strategy(compare="canary <= baseline *")},
        STRATEGY,
        "compare: 表达式不完整",
        "compare: ends too early",
    ),
    Case(
        "query without hosts",
        {"strategy": _strategy(query="up")},
        STRATEGY,
        "query: 须用 {HOSTS_RE} 选择主机",
        "query: it must select hosts with {HOSTS_RE}",
    ),
    Case(
        "query hosts outside quotes",
        {"strategy": _strategy(query="up{instance=~{HOSTS_RE}}")},
        STRATEGY,
        "query: {HOSTS_RE} 须写在引号内",
        "query: {HOSTS_RE} goes inside quotes",
    ),
    Case(
        "query unclosed string",
        {"strategy": _strategy(query='up{instance=~"{HOSTS_RE}}')},
        STRATEGY,
        'query: 以 " 开始的字符串没有闭合',
        'query: a string opened with " is not closed',
    ),
]


@pytest.mark.parametrize("case", ANALYSIS_CASES, ids=[c.id for c in ANALYSIS_CASES])
def test_a_bad_metric_is_refused_in_chinese_at_the_strategy(case, world, chinese):
    client, token = chinese
    refused = client.post(f"/s/{SPACE}/projects", data={"csrf": token, **_form(fresh("zh"), case)})
    assert refused.status_code == 422, refused.text[:500]
    errors = _errors(refused.text)
    assert case.chinese in errors.get(case.at, ""), (case.at, errors)
    said = _error_text(refused.text)
    assert said and not _english(said), said
    assert not any(left in said for left in LEFTOVERS), said


@pytest.mark.parametrize("case", ANALYSIS_CASES, ids=[c.id for c in ANALYSIS_CASES])
def test_the_english_ui_refuses_a_bad_metric_in_english(case, world, english):
    client, token = english
    refused = client.post(f"/s/{SPACE}/projects", data={"csrf": token, **_form(fresh("en"), case)})
    assert refused.status_code == 422
    assert case.english in _error_text(refused.text), _error_text(refused.text)
    assert not HAN.search(_error_text(refused.text))


def test_the_chinese_channel_form_names_events_in_words_and_offers_chinese_first(world, chinese):
    client, _token = chinese
    shown = client.get(f"/s/{SPACE}/notify").text
    assert re.search(
        r'value="deploy.failed"\s*> 部署失败 <code class="muted">deploy.failed</code>', shown
    )
    assert re.search(r'value="rollout.paused"\s*> 灰度发布暂停 <code', shown)
    assert re.search(r'<option value="zh_CN" selected>', shown)
