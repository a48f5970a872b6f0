"""The rules of where a local target may write (``domain/local_paths.py``) and of display
names (``domain/display_name.py``) are ``said``: the same English as before, and Chinese
from the catalogue with the same values."""

from __future__ import annotations

import pytest

from ferryman.domain import display_name, local_paths
from ferryman.errors import ValidationError
from ferryman.said import Said
from ferryman.web import i18n


def test_a_local_targets_directory_problem_is_said_with_its_path() -> None:
    cases = {
        ("/srv", ()): (
            "/srv is too broad to give a project (use a directory of its own below it)",
            "/srv 范围太大，不能交给一个项目（请在其下使用项目自己的目录）",
        ),
        ("/etc/shop", ()): (
            "/etc/shop is a system directory (/etc)",
            "/etc/shop 是系统目录（/etc）",
        ),
        ("/srv/ferryman/x", ("/srv/ferryman",)): (
            "/srv/ferryman/x overlaps Ferryman's own /srv/ferryman",
            "/srv/ferryman/x 与摆渡人自己的 /srv/ferryman 重叠",
        ),
    }
    for (path, guarded), (english, chinese) in cases.items():
        problem = local_paths.problem(path, guarded)
        assert isinstance(problem, Said)
        assert problem == english
        assert i18n.say("zh_CN", problem) == chinese


def test_the_project_files_local_problems_are_said_at_their_keys() -> None:
    problems = local_paths.config_problems("/srv/site", "/etc/releases", "/usr/shared")
    assert problems == [
        "releases: /etc/releases is a system directory (/etc)",
        "webroot: the webroot's parent /srv is too broad to give a project (use a directory "
        "of its own below it)",
        "shared_dir: /usr/shared is a system directory (/usr)",
    ]
    assert [i18n.say("zh_CN", p) for p in problems] == [
        "releases（发布目录）: /etc/releases 是系统目录（/etc）",
        "webroot: 网站根目录的上级目录 /srv 范围太大，不能交给一个项目"
        "（请在其下使用项目自己的目录）",
        "shared_dir（共享目录）: /usr/shared 是系统目录（/usr）",
    ]


@pytest.mark.parametrize(
    ("value", "english", "chinese"),
    [
        (
            "x" * 101,
            "name: at most 100 characters (this one has 101)",
            "name: 最多 100 个字符（当前有 101 个）",
        ),
        (
            "a\u2066b",
            "name: no control characters, line breaks or direction overrides (found U+2066)",
            "name: 不能包含控制字符、换行符或文字方向控制符（发现 U+2066）",
        ),
    ],
)
def test_a_display_name_refusal_is_said(value: str, english: str, chinese: str) -> None:
    with pytest.raises(ValidationError) as caught:
        display_name.check(value, "name")
    assert caught.value.message == english
    assert isinstance(caught.value.message, Said)
    assert i18n.say("zh_CN", caught.value.message) == chinese


def test_a_local_target_s_whole_refusal_reads_in_chinese_item_by_item() -> None:
    from pydantic import ValidationError as PydanticValidationError

    from ferryman.config.project import Environment

    with pytest.raises(PydanticValidationError) as caught:
        Environment.model_validate(
            {
                "hosts": ["local"],
                "webroot": "/srv/site",
                "releases": "/etc/releases",
                "shared_dir": "/usr/shared",
            }
        )
    [error] = caught.value.errors()
    problem = error["ctx"]["said"]
    assert isinstance(problem, Said)
    assert problem == (
        "local: releases: /etc/releases is a system directory (/etc); webroot: the webroot's "
        "parent /srv is too broad to give a project (use a directory of its own below it); "
        "shared_dir: /usr/shared is a system directory (/usr)"
    )
    chinese = i18n.say("zh_CN", problem)
    assert "releases（发布目录）: /etc/releases 是系统目录（/etc）；webroot: " in chinese
    assert "shared_dir（共享目录）: /usr/shared 是系统目录（/usr）" in chinese
    assert "system directory" not in chinese and "too broad" not in chinese


def test_a_project_files_display_name_refusal_names_its_key_once() -> None:
    """The project file's refusals are shown at their key; the message itself named the key
    again ("display_name: display_name: no control characters …")."""
    from ferryman.config.project import parse_project
    from ferryman.errors import ConfigError

    env = {"hosts": ["10.0.0.1"], "webroot": "/srv/www/a", "releases": "/srv/releases/a"}
    with pytest.raises(ConfigError) as caught:
        parse_project(
            {
                "project": "a",
                "repo": "https://x/y.git",
                "display_name": "a\u202eb",
                "environments": {"production": env},
            }
        )
    text = str(caught.value)
    assert "display_name: no control characters" in text
    assert "display_name: display_name" not in text
