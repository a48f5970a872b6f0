"""Issue 17's last leftovers: the refusals of ``strategy.analysis`` (``config/analysis.py``),
``verify_served`` (``config/served.py``), ``migrations`` (``config/migrations.py``) read in
Chinese in the Chinese UI, at their field, with their values; the English UI says the English
it said before. Each case is posted through the real project form (``test_config_refusals_in_
chinese``'s world, browsers and checks); no destination is outside 127.0.0.0/8."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.api.world import SPACE, fresh
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


def _analysis(prometheus: str = "http://127.0.0.1:9090", **keys: str) -> str:
    """A ``strategy`` with a canary and an analysis block, ``keys`` replacing its lines."""
    lines = {"interval": "30s", "duration": "5m"} | keys
    metrics = keys.pop("metrics", None) or (
        "  metrics:\n"
        "    - name: errors\n"
        '      query: up{instance=~"{HOSTS_RE}"}\n'
        "      compare: canary <= baseline\n"
    )
    return (
        "canary: 1\nanalysis:\n"
        f"  prometheus: {prometheus}\n"
        + "".join(f"  {k}: {v}\n" for k, v in lines.items() if k != "metrics")
        + metrics
    )


STRATEGY = "env.staging.strategy"
SERVED = "env.staging.verify_served"
METRIC = (
    "    - name: errors\n"
    '      query: up{instance=~"{HOSTS_RE}"}\n'
    "      compare: canary <= baseline\n"
)

CASES = [
    # strategy.analysis (config/analysis.py)
    Case(
        "analysis interval",
        {"strategy": _analysis(interval="2h")},
        STRATEGY,
        "须在 1 秒到 3600 秒之间",
        "between 1s and 3600s",
    ),
    Case(
        "analysis duration",
        {"strategy": _analysis(duration="2d")},
        STRATEGY,
        "不是有效的时长",
        "not a duration: '2d'",
    ),
    Case(
        "analysis duration span",
        {"strategy": _analysis(duration="25h")},
        STRATEGY,
        "须在 1 秒到 86400 秒之间",
        "between 1s and 86400s",
    ),
    Case(
        "prometheus too long",
        {"strategy": _analysis("http://127.0.0.1/" + "x" * 500)},
        STRATEGY,
        "prometheus: 超过 500 个字符",
        "prometheus: longer than 500 characters",
    ),
    Case(
        "prometheus spaces",
        {"strategy": _analysis('"http://127.0.0.1/a b"')},
        STRATEGY,
        "prometheus: 不能包含空格或控制字符",
        "prometheus: spaces or control characters",
    ),
    Case(
        "prometheus not a url",
        {"strategy": _analysis('"http://[::1"')},
        STRATEGY,
        "prometheus: 'http://[::1' 不是有效的地址",
        "prometheus: not a URL: 'http://[::1'",
    ),
    Case(
        "prometheus scheme",
        {"strategy": _analysis('"ftp://127.0.0.1/{v!r}"')},
        STRATEGY,
        "prometheus: 须为 http:// 或 https:// 开头的地址，而不是 'ftp://127.0.0.1/{v!r}'",
        "prometheus: an http:// or https:// URL, not 'ftp://127.0.0.1/{v!r}'",
    ),
    Case(
        "prometheus user",
        {"strategy": _analysis("http://u:p@127.0.0.1:9090")},
        STRATEGY,
        "prometheus: 地址中不能包含用户名或密码",
        "prometheus: no user or password in the URL (it is shown)",
    ),
    Case(
        "prometheus query",
        {"strategy": _analysis('"http://127.0.0.1:9090/?q=1"')},
        STRATEGY,
        "prometheus: 不能包含 ?查询参数 或 #片段",
        "prometheus: no ?query or #fragment (the API path is added)",
    ),
    Case(
        "prometheus not a string",
        {"strategy": _analysis("5")},
        STRATEGY,
        "应为文本，实际为 5",
        "expected a string, got 5",
    ),
    Case(
        "analysis duration under an interval",
        {"strategy": _analysis(interval="60s", duration="30s")},
        STRATEGY,
        "duration: 至少要有一个 interval 的长度",
        "duration: at least one interval",
    ),
    Case(
        "analysis too many intervals",
        {"strategy": _analysis(interval="1s", duration="2h")},
        STRATEGY,
        "duration: 最多 1000 个 interval",
        "duration: at most 1000 intervals (a longer interval)",
    ),
    Case(
        "analysis metric twice",
        {"strategy": _analysis(metrics="  metrics:\n" + METRIC + METRIC)},
        STRATEGY,
        "metrics: 名称重复：errors",
        "metrics: a name given twice: errors",
    ),
    # verify_served (config/served.py)
    Case(
        "verify_served scheme",
        {"verify_served": "http: ftp://{HOST}/version"},
        SERVED,
        "http: 须为 http:// 或 https:// 开头的地址",
        "http: an http:// or https:// URL",
    ),
    Case(
        "verify_served spaces",
        {"verify_served": 'http: "http://{HOST}/a b"'},
        SERVED,
        "http: 不能包含空格或控制字符",
        "http: no spaces or control characters",
    ),
    Case(
        "verify_served not a url",
        {"verify_served": 'http: "http://[{HOST}/"'},
        SERVED,
        "http: 不是有效的地址",
        "http: not a URL",
    ),
    Case(
        "verify_served user",
        {"verify_served": 'http: "http://u:p@{HOST}/version"'},
        SERVED,
        "http: 地址中不能包含用户名或密码",
        "http: no user or password in the URL",
    ),
    Case(
        "verify_served host",
        {"verify_served": "http: http://127.0.0.1/version"},
        SERVED,
        "http: 地址的主机必须是 {HOST}（即被检查的主机）",
        "http: the URL's host must be {HOST} (the host being checked)",
    ),
    Case(
        "verify_served port",
        {"verify_served": 'http: "http://{HOST}:99999/version"'},
        SERVED,
        "http: '99999' 不是有效的端口",
        "http: not a port: '99999'",
    ),
    Case(
        "verify_served header",
        {"verify_served": 'http: "http://{HOST}/version"\nheader: "X Release"'},
        SERVED,
        "header: 须为响应头名称，例如 X-Release",
        "header: a response header name, e.g. X-Release",
    ),
    Case(
        "verify_served expect",
        {"verify_served": 'http: "http://{HOST}/version"\nexpect: "a\\u0007b"'},
        SERVED,
        "expect: 不能包含控制字符",
        "expect: no control characters",
    ),
    Case(
        "verify_served variable",
        {"verify_served": 'http: "http://{HOST}/{NOPE}"'},
        SERVED,
        "http: 未知变量 {NOPE}（可用：",
        "http: unknown variable {NOPE} (known: ",
    ),
    Case(
        "verify_served interval",
        {"verify_served": 'http: "http://{HOST}/version"\ninterval: 2m'},
        SERVED,
        "须不少于 0 秒，且不超过 60 秒",
        "at least 0s, at most 60s",
    ),
    Case(
        "verify_served timeout",
        {"verify_served": 'http: "http://{HOST}/version"\ntimeout: 0s'},
        SERVED,
        "须大于 0 秒，且不超过 30 秒",
        "more than 0s, at most 30s",
    ),
    Case(
        "verify_served timeout not a duration",
        {"verify_served": 'http: "http://{HOST}/version"\ntimeout: soon'},
        SERVED,
        "不是有效的时长",
        "not a duration: 'soon'",
    ),
    # migrations (config/migrations.py)
    Case(
        "migrations command",
        {"migrations": 'command: "  "'},
        "env.staging.migrations",
        "command: 须为一条 shell 命令",
        "command: a shell command",
    ),
    Case(
        "migrations timeout",
        {"migrations": "command: list\ntimeout: 11m"},
        "env.staging.migrations",
        "须大于 0 秒，且不超过 600 秒",
        "more than 0s, at most 600s",
    ),
    # the project's version control: its own error slot in the form
    Case("vcs", {}, "vcs", "须为以下之一：'git', 'svn'", "one of 'git', 'svn'", top={"vcs": "hg"}),
]


def _check_chinese(page: str, case: Case) -> None:
    errors = _errors(page)
    assert case.chinese in errors.get(case.at, ""), (case.at, errors)
    said = _error_text(page)
    assert said and not _english(said), said
    assert not any(left in said.replace("{v!r}'", "") for left in LEFTOVERS), said
    assert re.search(r"[\u4e00-\u9fff]", errors[case.at]), errors[case.at]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_bad_block_is_refused_in_chinese_at_its_field(case: Case, world: Any, chinese: Any):
    client, token = chinese
    refused = client.post(f"/s/{SPACE}/projects", data={"csrf": token, **_form(fresh("zh"), case)})
    assert refused.status_code == 422, refused.text[:500]
    _check_chinese(refused.text, case)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_english_ui_says_what_it_said_before(case: Case, world: Any, english: Any):
    client, token = english
    refused = client.post(f"/s/{SPACE}/projects", data={"csrf": token, **_form(fresh("en"), case)})
    assert refused.status_code == 422
    assert case.english in _error_text(refused.text), _error_text(refused.text)
    assert not re.search(r"[\u4e00-\u9fff]", _error_text(refused.text))
