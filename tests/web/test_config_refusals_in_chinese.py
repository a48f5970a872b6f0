"""Every refusal of the project file's validators (``config/project.py``: durations and their
limits, health checks, the gray release, watch, hosts, local targets, promotions, retention,
the choices and patterns pydantic checks) and of the outbound policy (a notification URL or
host, a Prometheus address) reads in Chinese in the Chinese UI, at its field, with its values
filled in: no English sentence, no ``{v!r}``, no "Input should be". The English UI, the API
and the CLI say the same English as before (``said`` messages are that English text).

A table of bad configurations, one per validator, each posted through the real project form
of a server app (a signed-in master's browser session)."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from ferryman.config.project import parse_project
from ferryman.errors import ConfigError
from tests.api.world import SPACE, World, build_world, fresh
from tests.web.test_pages import browser, csrf_of

CHINESE = "zh-CN,zh;q=0.9"
ANALYSIS = (
    "analysis:\n"
    "  prometheus: http://203.0.113.9:9090\n"
    "  interval: 30s\n"
    "  duration: 5m\n"
    "  metrics:\n"
    "    - name: errors\n"
    '      query: up{instance=~"{HOSTS_RE}"}\n'
    "      compare: canary <= baseline\n"
)
# two English words in a row, outside the quoted values: what an untranslated sentence leaves
# (keys and paths are single words: ``strategy/pause``, ``out_until_continue``, ``mode: push``)
ENGLISH = re.compile(r"\b[A-Za-z]{2,} [a-z]{2,}\b")
LEFTOVERS = ("Input should", "should match", "should have", "{v}", "{v!r}", "{p}", "{h}", "%(")


@dataclass(frozen=True)
class Case:
    """A bad value (form fields of the staging environment: ``key`` → text; ``top``: fields
    of the project), the field the error is shown at, the Chinese and the English text."""

    id: str
    env: dict[str, str]
    at: str
    chinese: str
    english: str
    top: dict[str, str] = field(default_factory=dict)


CASES = [
    # hosts, servers, labels, user, paths (the checks of domain/validate.py)
    Case(
        "host", {"hosts": "a b"}, "env.staging.hosts", "不是有效的主机：'a b'", "not a host: 'a b'"
    ),
    Case(
        "host listed twice",
        {"hosts": "h1.example\nh1.example"},
        "env.staging.hosts",
        "主机重复列出：'h1.example'",
        "host listed twice: 'h1.example'",
    ),
    Case(
        "server name",
        {"servers": "-bad"},
        "env.staging.servers",
        "无效的名称 '-bad'：请使用 1-64 个字母",
        "invalid name '-bad': use 1-64 letters",
    ),
    Case(
        "label", {"labels": "=x"}, "env.staging.labels", "不是有效的标签：'=x'", "not a label: '=x'"
    ),
    Case("user", {"user": "bad user"}, "env.staging.user", "无效的用户名 'bad user'", "invalid"),
    Case(
        "webroot",
        {"webroot": "relative"},
        "env.staging.webroot",
        "无效的路径 'relative'：必须是绝对路径",
        "invalid path 'relative': must be an absolute path",
    ),
    Case(
        "shared",
        {"shared": "../x"},
        "env.staging.shared",
        "无效的路径 '../x'：不能含 '..'，也不能以 '-' 开头",
        "invalid path '../x': no '..' and no leading '-'",
    ),
    Case(
        "excludes",
        {"excludes": "../x"},
        "env.staging.excludes",
        "不是有效的排除模式：'../x'",
        "not an exclude pattern: '../x'",
    ),
    Case(
        "version_file",
        {"version_file": "/abs"},
        "env.staging.version_file",
        "无效的路径 '/abs'：必须是相对路径",
        "invalid path '/abs': must be a relative path",
    ),
    Case(
        "secret name",
        {"secrets": "1BAD"},
        "env.staging.secrets",
        "变量 1BAD：不是合法的变量名",
        "variables/1BAD: not a variable name",
    ),
    Case(
        "config file twice",
        {"config_files": "app/a.conf\napp/a.conf"},
        "env.staging.config_files",
        "重复列出：'app/a.conf'",
        "listed twice: 'app/a.conf'",
    ),
    Case(
        "config file reserved",
        {"config_files": ".git/config"},
        "env.staging.config_files",
        "此路径由摆渡人或 git 保留",
        "reserved by Ferryman or git",
    ),
    Case(
        "release_name",
        {"release_name": "static"},
        "env.staging.release_name",
        "release_name: 至少使用一个字段，例如 {time}",
        "release_name: give at least one field, e.g. {time}",
    ),
    Case(
        "release_name field",
        {"release_name": '"{nope}"'},
        "env.staging.release_name",
        "release_name: 未知字段 {nope}（可用：",
        "release_name: unknown field {nope} (known: ",
    ),
    # numbers pydantic checks
    Case("keep_releases low", {"keep_releases": "1"}, "env.staging.keep_releases", "至少 2", ""),
    Case(
        "keep_releases high", {"keep_releases": "101"}, "env.staging.keep_releases", "最多 100", ""
    ),
    Case(
        "keep_releases text", {"keep_releases": "many"}, "env.staging.keep_releases", "一个整数", ""
    ),
    Case("parallel", {"parallel": "0"}, "env.staging.parallel", "至少 1", ""),
    # durations (domain/rollout.duration) and their limits
    Case(
        "task_timeout zero",
        {"task_timeout": "0"},
        "env.staging.task_timeout",
        "须大于 0 秒，且不超过 24 小时",
        "more than 0s, at most 24h",
    ),
    Case(
        "command_timeout high",
        {"command_timeout": "90000"},
        "env.staging.command_timeout",
        "须大于 0 秒，且不超过 24 小时",
        "more than 0s, at most 24h",
    ),
    Case(
        "transfer_timeout word",
        {"transfer_timeout": "soon"},
        "env.staging.transfer_timeout",
        "时长: 'soon' 不是有效的时长（可写作 30s、5m、1h）",
        "duration: not a duration: 'soon' (like 30s, 5m, 1h)",
    ),
    Case(
        "task_timeout over a week",
        {"task_timeout": "700000"},
        "env.staging.task_timeout",
        "时长: 须在 0 到 7 天之间",
        "duration: between 0 and 7 days",
    ),
    Case(
        "connect_timeout",
        {"connect_timeout": "601"},
        "env.staging.connect_timeout",
        "须大于 0 秒，且不超过 10 分钟",
        "more than 0s, at most 10m",
    ),
    Case(
        "post_release_delay",
        {"post_release_delay": "3601"},
        "env.staging.post_release_delay",
        "须不少于 0 秒，且不超过 1 小时",
        "at least 0s, at most 1h",
    ),
    Case(
        "pull poll_every",
        {"pull": "poll_every: often"},
        "env.staging.pull",
        "时长: 'often' 不是有效的时长（可写作 30s、5m、1h）",
        "duration: not a duration: 'often' (like 30s, 5m, 1h)",
    ),
    Case(
        "log_retention",
        {"log_retention": "forever"},
        "env.staging.log_retention",
        "可写作 180d、26w、72h 或 off（至少一天）",
        "180d, 26w, 72h or off (at least a day)",
    ),
    # the gray release (domain/rollout.duration and amount, Strategy's rules)
    Case(
        "strategy pause",
        {"strategy": "pause: soon"},
        "env.staging.strategy",
        "strategy/pause: 'soon' 不是有效的时长（可写作 30s、5m、1h）",
        "strategy/pause: not a duration: 'soon' (like 30s, 5m, 1h)",
    ),
    Case(
        "strategy between_batches",
        {"strategy": "between_batches: later"},
        "env.staging.strategy",
        "时长: 'later' 不是有效的时长",
        "duration: not a duration: 'later'",
    ),
    Case(
        "strategy max_failed",
        {"strategy": "max_failed: x%"},
        "env.staging.strategy",
        "strategy/max_failed: 'x%' 不是有效的百分比",
        "strategy/max_failed: not a percentage: 'x%'",
    ),
    Case(
        "strategy batches percent",
        {"strategy": "batches: 150%"},
        "env.staging.strategy",
        "strategy/batches: 须为 0% 到 100% 之间的百分比",
        "strategy/batches: a percentage between 0% and 100%",
    ),
    Case(
        "strategy batches word",
        {"strategy": "batches: lots"},
        "env.staging.strategy",
        "strategy/batches: 须为数字或百分比，而不是 'lots'",
        "strategy/batches: a number or a percentage, not 'lots'",
    ),
    Case(
        "strategy canary negative",
        {"strategy": "canary: -1"},
        "env.staging.strategy",
        "strategy/canary: 不能为负数",
        "strategy/canary: not negative",
    ),
    Case(
        "strategy batches zero",
        {"strategy": "batches: 0"},
        "env.staging.strategy",
        "batches: 每批至少一台主机",
        "batches: at least one host per batch",
    ),
    Case(
        "strategy on_failure",
        {"strategy": "on_failure: explode"},
        "env.staging.strategy",
        "须为以下之一：'rollback', 'halt'",
        "",
    ),
    Case(
        "strategy canary_lb",
        {"strategy": "canary_lb: out_until_continue"},
        "env.staging.strategy",
        "canary_lb: out_until_continue 需要 canary、lb_out、lb_in 和一次暂停",
        "canary_lb: out_until_continue needs a canary, lb_out, lb_in and a pause",
    ),
    Case(
        "strategy analysis without canary",
        {"strategy": "pause: none\n" + ANALYSIS},
        "env.staging.strategy",
        "analysis: 分析要与金丝雀比较；请设置 canary",
        "analysis: compares a canary; give canary",
    ),
    Case(
        "strategy analysis held out",
        {
            "strategy": "canary: 1\ncanary_lb: out_until_continue\nlb_out: x\nlb_in: y\n"
            "pause: manual\n" + ANALYSIS
        },
        "env.staging.strategy",
        "analysis: 需要 canary_lb: in（移出负载均衡的金丝雀没有流量可分析）",
        "analysis: needs canary_lb: in (a canary held out serves no traffic)",
    ),
    Case(
        "strategy analysis in pull mode",
        {"mode": "pull", "strategy": "canary: 1\n" + ANALYSIS},
        "environments",
        "strategy/analysis: 仅用于 push 模式（pull 模式的主机自行切换）",
        "strategy/analysis: push mode only (pull-mode hosts switch themselves)",
    ),
    # health checks
    Case(
        "health_check none",
        {"health_check": "- timeout: 5s"},
        "env.staging.health_check",
        "http、tcp、command 须且只能给出其中一个",
        "give exactly one of http, tcp, command",
    ),
    Case(
        "health_check http",
        {"health_check": "- http: ftp://x"},
        "env.staging.health_check",
        "http: 须为 http:// 或 https:// 开头的地址",
        "http: an http:// or https:// URL",
    ),
    Case(
        "health_check tcp",
        {"health_check": "- tcp: x"},
        "env.staging.health_check",
        "tcp: 须写作 主机:端口（HOST:PORT）",
        "tcp: HOST:PORT",
    ),
    Case(
        "health_check expect",
        {"health_check": "- command: 'true'\n  expect: 200"},
        "env.staging.health_check",
        "expect 和 contains 只用于 http 检查",
        "expect and contains are for http checks",
    ),
    Case(
        "health_check timeout",
        {"health_check": "- command: 'true'\n  timeout: 11m"},
        "env.staging.health_check",
        "timeout: 须大于 0，且不超过 10 分钟",
        "timeout: more than 0, at most 10m",
    ),
    Case(
        "health_check retries",
        {"health_check": "- command: 'true'\n  retries: 0"},
        "env.staging.health_check",
        "至少 1",
        "",
    ),
    # watch, requires, mode, pull, sandbox, triggers, hooks, unknown keys
    Case(
        "watch without checks",
        {"watch": "10m"},
        "environments",
        "watch: 持续观察会重复执行 health_check；请先设置 health_check",
        "watch: repeats health_check; give health_check",
    ),
    Case(
        "watch window",
        {"watch": "window: 0", "health_check": "- command: 'true'"},
        "env.staging.watch",
        "须大于 0 秒，且不超过 24 小时",
        "more than 0s, at most 24h",
    ),
    Case(
        "watch every",
        {"watch": "window: 10m\nevery: 0.5", "health_check": "- command: 'true'"},
        "env.staging.watch",
        "须不少于 1 秒，且不超过 1 小时",
        "at least 1s, at most 1h",
    ),
    Case(
        "watch on_failure",
        {"watch": "window: 10m\non_failure: panic", "health_check": "- command: 'true'"},
        "env.staging.watch",
        "须为以下之一：'notify', 'rollback'",
        "",
    ),
    Case(
        "requires command",
        {"requires": "commands: ['-x']"},
        "env.staging.requires",
        "命令名：1-64 个字母、数字、'.'、'_'、'+' 或 '-'，并以字母或数字开头",
        "",
    ),
    Case(
        "requires package",
        {"requires": "packages: ['-x']"},
        "env.staging.requires",
        "软件包名：1-128 个字母、数字",
        "",
    ),
    Case("mode", {"mode": "sideways"}, "env.staging.mode", "须为以下之一：'push', 'pull'", ""),
    Case("sandbox", {"sandbox": "network: maybe"}, "env.staging.sandbox", "是或否", ""),
    Case("triggers", {"triggers": "branches: main"}, "env.staging.triggers", "每行一项", ""),
    Case(
        "unknown key",
        {"strategy": "colour: blue"},
        "env.staging.strategy",
        "不是摆渡人认识的设置",
        "",
    ),
    Case(
        "restart task",
        {"tasks.restart": "post_release"},
        "env.staging.tasks.restart",
        "restart: 写作 post_release 表示沿用 post_release 任务，但该任务为空",
        "restart: post_release names the post_release task, which is empty",
    ),
    # rules across keys
    Case(
        "no hosts",
        {"hosts": ""},
        "environments",
        "请填写主机、服务器或标签（至少一台主机）",
        "give hosts, servers or labels (at least one host)",
    ),
    Case(
        "webroot inside releases",
        {"webroot": "/srv/same", "releases": "/srv/same"},
        "environments",
        "网站根目录和版本目录不能互相包含",
        "webroot and releases must not contain one another",
    ),
    Case(
        "local with a user",
        {"hosts": "deploy@local"},
        "environments",
        "local: 只写 `local` 即可（它以项目自己的用户运行，不带端口）",
        "local: give it as just `local` (it runs as the project's own user, no port)",
    ),
    Case(
        "local in pull mode",
        {"hosts": "local", "mode": "pull"},
        "environments",
        "local: 本机目标由 worker 部署（mode: push）",
        "local: a local target is deployed by the worker (mode: push)",
    ),
    Case(
        "requires_passed itself",
        {"requires_passed": "staging"},
        "env.staging.requires_passed",
        "环境不能要求自身先部署成功",
        "an environment cannot require itself",
    ),
    Case(
        "requires_passed unknown",
        {"requires_passed": "prod"},
        "env.staging.requires_passed",
        "本项目没有环境 'prod'（现有：staging）",
        "no environment 'prod' in this project (has: staging)",
    ),
    # the project's own keys
    Case(
        "repo",
        {},
        "repo",
        "不是仓库地址：'not a url'（请使用 ssh://",
        "not a repository URL: 'not a url' (use ssh://",
        top={"repo": "not a url"},
    ),
    Case(
        "no environment", {}, "environments", "至少需要 1 项", "", top={"env.staging.enabled": ""}
    ),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("config-said"))


@pytest.fixture(scope="module")
def chinese(world: World) -> tuple[Any, str]:
    client = browser(world, "master", language=CHINESE)
    return client, csrf_of(client)


@pytest.fixture(scope="module")
def english(world: World) -> tuple[Any, str]:
    client = browser(world, "master")
    return client, csrf_of(client)


def _form(name: str, case: Case) -> dict[str, str]:
    env = {
        "hosts": "127.0.0.2:1",
        "user": "root",
        "webroot": f"/srv/www/{name}",
        "releases": f"/srv/releases/{name}",
    } | case.env
    fields = {"project": name, "repo": "ssh://git@127.0.0.1/x.git", "env.staging.enabled": "1"}
    fields |= {f"env.staging.{key}": value for key, value in env.items()}
    return {k: v for k, v in (fields | case.top).items() if v != ""}


def _errors(page: str) -> dict[str, str]:
    """The field errors of a form page: the field's name → its error, as a person reads it."""
    out = {}
    for found in re.finditer(
        r'name="(?P<name>[^"]+)"(?:(?!</label>|name=")[\s\S])*?'
        r'<span class="field-error" role="alert">(?P<text>[\s\S]*?)</span>',
        page,
    ):
        out[found["name"]] = html.unescape(found["text"])
    # the environments' error: below the project's fields, after the description
    banner = re.search(
        r'name="description"[^>]*></label>\s*'
        r'<span class="field-error" role="alert">([\s\S]*?)</span>',
        page,
    )
    if banner is not None:
        out["environments"] = html.unescape(banner.group(1))
    return out


def _english(text: str) -> list[str]:
    """The English words in a row in ``text``, its quoted values left out."""
    return ENGLISH.findall(re.sub(r"'[^']*'", "''", text))


def _error_text(page: str) -> str:
    return "\n".join(
        html.unescape(m)
        for m in re.findall(r'class="(?:field-)?error" role="alert">([^<]*)<', page)
    )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_bad_config_is_refused_in_chinese_at_its_field_with_its_values(case, world, chinese):
    client, token = chinese
    name = fresh("zh")
    refused = client.post(f"/s/{SPACE}/projects", data={"csrf": token, **_form(name, case)})
    assert refused.status_code == 422, refused.text[:500]
    errors = _errors(refused.text)
    assert case.chinese in errors.get(case.at, ""), (case.at, errors)
    said = _error_text(refused.text)
    assert said and not _english(said), said
    assert not any(left in said for left in LEFTOVERS), said
    assert re.search(r"[\u4e00-\u9fff]", errors[case.at]), errors[case.at]


@pytest.mark.parametrize("case", [c for c in CASES if c.english], ids=lambda c: c.id)
def test_the_english_ui_says_the_english_it_said_before(case, world, english):
    client, token = english
    refused = client.post(f"/s/{SPACE}/projects", data={"csrf": token, **_form(fresh("en"), case)})
    assert refused.status_code == 422
    assert case.english in _error_text(refused.text), _error_text(refused.text)
    assert not re.search(r"[\u4e00-\u9fff]", _error_text(refused.text))


def test_the_api_answers_a_chinese_browser_with_the_english_contract(world, chinese):
    """``POST /api/v1/projects`` (``ferryman apply``): the code, the paths and the English
    lines are the API's contract, whatever language the caller's browser asks for."""
    client, token = chinese
    config = {
        "project": fresh("api"),
        "space": SPACE,
        "repo": "ssh://git@127.0.0.1/x.git",
        "environments": {
            "staging": {
                "hosts": ["127.0.0.2:1"],
                "webroot": "/srv/www/api",
                "releases": "/srv/releases/api",
                "task_timeout": 0,
                "strategy": {"pause": "soon"},
                "health_check": [{"tcp": "x"}],
            }
        },
    }
    answer = client.post(
        "/api/v1/projects", json=config, headers={"X-CSRF-Token": token, "Accept": "*/*"}
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "config_invalid"
    assert error["message"].startswith("invalid project configuration\n")
    assert {(tuple(e["loc"]), e["message"]) for e in error["details"]["errors"]} == {
        (("environments", "staging", "task_timeout"), "more than 0s, at most 24h"),
        (
            ("environments", "staging", "strategy"),
            "strategy/pause: not a duration: 'soon' (like 30s, 5m, 1h)",
        ),
        (("environments", "staging", "health_check", 0), "tcp: HOST:PORT"),
    }
    with pytest.raises(ConfigError) as caught:
        parse_project(config)
    assert [str(line) for line in caught.value.errors] == [
        "environments/staging/task_timeout: more than 0s, at most 24h",
        "environments/staging/strategy: strategy/pause: not a duration: 'soon' (like 30s, 5m, 1h)",
        "environments/staging/health_check/0: tcp: HOST:PORT",
    ]


# --- the outbound policy ---------------------------------------------------------------------


def _channel(client: Any, token: str, kind: str, settings: str) -> Any:
    return client.post(
        f"/s/{SPACE}/notify",
        data={
            "csrf": token,
            "name": fresh("hook"),
            "kind": kind,
            "language": "en",
            "settings": settings,
            "from": "x@example.com",
            "enabled": "1",
        },
    )


OUTBOUND = [
    (
        "webhook",
        "url=http://169.254.169.254/latest",
        "url: 169.254.169.254 是链路本地地址；内部地址一律拒绝，除非超级管理员允许"
        "（FERRYMAN_OUTBOUND_ALLOW）",
        "url: 169.254.169.254, a link-local address; internal destinations are refused",
    ),
    (
        "webhook",
        "url=http://[::ffff:10.0.0.1]/hook",
        "url: ::ffff:10.0.0.1 解析为 ::ffff:a00:1 是私有网络（::ffff:a00:1 内嵌的 10.0.0.1）地址",
        "url: ::ffff:10.0.0.1 resolves to ::ffff:a00:1, a private (10.0.0.1 inside ::ffff:a00:1)"
        " address",
    ),
    ("slack", "url=ftp://hooks.example/x", "url: 须为 http(s) 地址", "url: an http(s) URL"),
    (
        "email",
        "host=100.64.0.1\nfrom=ops@example.com",
        "host: 100.64.0.1 是共享（CGNAT）地址",
        "host: 100.64.0.1, a shared (CGNAT) address",
    ),
    ("email", "host=0.0.0.0\nfrom=ops@example.com", "host: 0.0.0.0 是未指定地址", "unspecified"),
    ("webhook", "url=http://224.0.0.1/", "url: 224.0.0.1 是组播地址", "a multicast address"),
    ("webhook", "url=http://240.0.0.1/", "url: 240.0.0.1 是保留地址", "a reserved address"),
    ("email", "host=mail.example\nfrom=ops@example.com\ntls=yes", "tls: 须为 starttls", "tls: "),
    (
        "email",
        "host=mail.example\nfrom=ops@example.com\nport=70000",
        "port: 须为 1 到 65535",
        "port: ",
    ),
    ("email", "from=ops@example.com", "host: 请填写 SMTP 服务器", "host: the SMTP server"),
]


@pytest.mark.parametrize(("kind", "settings", "chinese_text", "english_text"), OUTBOUND)
def test_a_refused_notification_destination_reads_in_chinese(
    kind, settings, chinese_text, english_text, world, chinese, english
):
    client, token = chinese
    refused = _channel(client, token, kind, settings)
    assert refused.status_code == 422, refused.text[:500]
    said = _error_text(refused.text)
    assert chinese_text in said, said
    assert not _english(said), said
    english_client, english_token = english
    assert english_text in _error_text(_channel(english_client, english_token, kind, settings).text)


def test_a_refused_prometheus_address_reads_in_chinese_at_the_strategy(world, chinese):
    client, token = chinese
    analysis = ANALYSIS.replace("203.0.113.9", "10.0.0.9")
    case = Case(
        "prometheus", {"strategy": "canary: 1\n" + analysis}, "env.staging.strategy", "", ""
    )
    refused = client.post(f"/s/{SPACE}/projects", data={"csrf": token, **_form(fresh("p"), case)})
    assert refused.status_code == 422
    shown = _errors(refused.text)["env.staging.strategy"]
    assert "10.0.0.9 是私有网络地址；内部地址一律拒绝" in shown, shown
    assert not _english(_error_text(refused.text)), _error_text(refused.text)
