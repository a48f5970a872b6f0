"""The messages of the project file's validators, of durations and amounts and of the outbound
policy are ``said`` — so the catalogue test requires a Chinese line for each — and a message
added later as a plain English string, or a ``said`` one nobody translated, fails a test."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

import ferryman
from ferryman.config.project import parse_project
from ferryman.errors import ConfigError
from ferryman.said import Said
from ferryman.web import forms, i18n
from tests.web import test_catalogue

PACKAGE = Path(ferryman.__file__).parent
# where a person's refusals are made: each raise names its message with ``said``
SAYING = (
    "config/project.py",
    "domain/rollout.py",
    "outbound.py",
    "notify/channels/base.py",
    "notify/channels/email.py",
    "config/analysis.py",
    "config/served.py",
    "config/migrations.py",
    "domain/local_paths.py",
    "domain/display_name.py",
)
REFUSALS = {
    "ValidationError",
    "ConfigError",
    "NotFound",
    "Refused",
    "Unresolved",
    "PydanticCustomError",
    "_refused",
}


def _plain_english(source: str) -> list[str]:
    """Refusals in ``source`` whose message is a string written out (a literal, an f-string or
    a sum of them) instead of a ``said`` message: ``line: text`` for each."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", getattr(node.func, "attr", ""))
        if name not in REFUSALS or not node.args:
            continue
        # PydanticCustomError(kind, template, …) and _refused(kind, message): the second
        message = node.args[1] if name in ("PydanticCustomError", "_refused") else node.args[0]
        if len(node.args) < 2 and name in ("PydanticCustomError", "_refused"):
            continue
        if _written_out(message) and not (name == "PydanticCustomError" and _is(message, "{said}")):
            found.append(f"{node.lineno}: {ast.unparse(node)[:80]}")
    return found


def _written_out(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return True
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp):
        return _written_out(node.left) or _written_out(node.right)
    return False


def _is(node: ast.expr, text: str) -> bool:
    return isinstance(node, ast.Constant) and node.value == text


@pytest.mark.parametrize("path", SAYING)
def test_every_refusal_of_these_modules_is_said(path: str) -> None:
    assert _plain_english((PACKAGE / path).read_text()) == []


def test_a_refusal_added_as_plain_english_is_caught() -> None:
    """What the check above finds: a validator message written as a string, an f-string, a
    concatenation, or a template of pydantic's own; not ``said`` nor a name bound to one."""
    source = """
def check(value):
    raise _refused("duration", "at most a day")
def other(value):
    raise ValidationError(f"{value}: not a colour")
def third(value):
    raise PydanticCustomError("x", "not {v!r}", {"v": value})
def fine(value):
    raise _refused("duration", said("at most %(n)s", n=1))
def fine_too(value, exc):
    raise ValidationError(exc.message)
"""
    assert [line.split(":")[0] for line in _plain_english(source)] == ["3", "5", "7"]


def _copy_of_the_package(tmp_path: Path) -> Path:
    copy = tmp_path / "ferryman"
    shutil.copytree(
        PACKAGE,
        copy,
        ignore=shutil.ignore_patterns("__pycache__", "static", "templates", "locales", "*.pyc"),
    )
    return copy


def test_the_catalogue_test_fails_for_a_new_said_message_nobody_translated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catalogue test (``tests/web/test_catalogue.py``) reads every ``said`` template of
    the package: run on a copy of the package, it passes; on the copy with a new validator
    message in ``config/project.py`` that the catalogue lacks, it fails naming it."""
    copy = _copy_of_the_package(tmp_path)
    monkeypatch.setattr(test_catalogue, "WEB", copy / "web")
    test_catalogue.test_services_messages_made_with_said_are_in_the_chinese_catalogue_too()

    project = copy / "config" / "project.py"
    project.write_text(
        project.read_text()
        + "\n\ndef _new_rule(value):\n"
        + '    raise _refused("x", said("x: a rule %(n)s nobody translated", n=value))\n'
    )
    with pytest.raises(AssertionError, match="not translated: 'x: a rule %\\(n\\)s nobody"):
        test_catalogue.test_services_messages_made_with_said_are_in_the_chinese_catalogue_too()


def test_a_said_line_of_a_field_keeps_its_field_before_an_ascii_colon_in_chinese() -> None:
    """A template that starts with its field (``%(field)s: …``, ``strategy/canary: …``):
    the Chinese keeps it, so a line whose field is a path is placed at its field."""
    chinese = i18n.translations("zh_CN")
    starts = ("%(field)s: ", "%(setting)s: ", "strategy/", "environments/", "local: ")
    for template in test_catalogue._said():
        for start in starts:
            if template.startswith(start) and template != "local: %(problems)s":
                prefix = template.split(": ", 1)[0] + ": "
                assert chinese.gettext(template).startswith(prefix), template


def test_a_validator_line_is_said_with_its_path_and_the_english_it_had() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_project(
            {
                "project": "shop",
                "repo": "ssh://git@127.0.0.1/x.git",
                "environments": {
                    "staging": {
                        "hosts": ["h1.example"],
                        "webroot": "/srv/www/shop",
                        "releases": "/srv/releases/shop",
                        "connect_timeout": "11m",
                        "strategy": {"batches": "150%"},
                    }
                },
            }
        )
    lines = caught.value.errors
    assert lines == [
        "environments/staging/connect_timeout: more than 0s, at most 10m",
        "environments/staging/strategy: strategy/batches: a percentage between 0% and 100%",
    ]
    assert all(isinstance(line, Said) for line in lines)
    assert [i18n.say("zh_CN", line) for line in lines] == [
        "environments/staging/connect_timeout: 须大于 0 秒，且不超过 10 分钟",
        "environments/staging/strategy: strategy/batches: 须为 0% 到 100% 之间的百分比",
    ]
    assert caught.value.message == "invalid project configuration"
    assert i18n.say("zh_CN", caught.value.message) == "项目配置无效"


def test_braces_in_a_value_stay_text() -> None:
    """The message rides in pydantic's context, not as its template: a value with braces is
    never read as a placeholder (the ``{v!r}`` the issue saw)."""
    with pytest.raises(ConfigError) as caught:
        parse_project(
            {
                "project": "shop",
                "repo": "ssh://{v!r}@x y",
                "environments": {
                    "staging": {
                        "hosts": ["{h}"],
                        "webroot": "/srv/www/shop",
                        "releases": "/srv/releases/shop",
                        "excludes": ["../{p}"],
                    }
                },
            }
        )
    said = "\n".join(i18n.say("zh_CN", line) for line in caught.value.errors)
    assert "不是仓库地址：'ssh://{v!r}@x y'" in said
    assert "不是有效的主机：'{h}'" in said
    assert "不是有效的排除模式：'../{p}'" in said


def test_pydantics_own_messages_are_said_as_a_person_would() -> None:
    """Choices, patterns and counts pydantic checks itself (``vcs``'s choice, at its own
    field of the project form, is also posted in tests/web/test_more_refusals_in_chinese.py)."""
    cases = {
        "Input should be 'git' or 'svn'": "须为以下之一：'git', 'svn'",
        "Input should be 'a', 'b' or 'c'": "须为以下之一：'a', 'b', 'c'",
        "Dictionary should have at least 1 item after validation, not 0": "至少需要 1 项",
        "String should match pattern '^x$'": "不符合格式 ^x$",
        "Input should be less than 5": "须小于 5",
    }
    for english, chinese in cases.items():
        plain = forms.plain(english)
        assert isinstance(plain, Said), english
        assert i18n.say("zh_CN", plain) == chinese
    assert str(forms.plain("Input should be 'git' or 'svn'")) == "one of 'git', 'svn'"


def test_rules_across_environments_and_hooks_are_placed_at_their_fields() -> None:
    errors = forms.field_errors(
        [
            "(top level): environments/staging/requires_passed: no environment 'x' in this "
            "project (has: staging)",
            "environments/staging/tasks: restart: post_release names the post_release task, "
            "which is empty",
        ]
    )
    assert errors == {
        "env.staging.requires_passed": "no environment 'x' in this project (has: staging)",
        "env.staging.tasks.restart": "restart: post_release names the post_release task, "
        "which is empty",
    }
