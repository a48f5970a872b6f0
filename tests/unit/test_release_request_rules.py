"""How a release request's fields land in an environment's settings, and its time window:
the build and the unit tests share ``post_deploy`` and are read back apart; a setting left
out stays; commands are text, never control characters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ferryman.domain import release_request as rules
from ferryman.errors import ValidationError

CONFIG: dict[str, Any] = {
    "project": "shop",
    "environments": {
        "production": {
            "hosts": ["web1"],
            "tasks": {"post_deploy": "make", "pre_deploy": "echo hi"},
            "requires": {"commands": ["php"]},
        }
    },
}


def test_build_and_tests_share_post_deploy_and_read_back_apart():
    script = rules.join_post_deploy("make build", "make test")
    assert script == "make build\n# unit tests (release request)\nmake test"
    assert rules.split_post_deploy(script) == ("make build", "make test")
    assert rules.split_post_deploy("make all\n") == ("make all", "")
    assert rules.join_post_deploy("make", "") == "make"
    assert rules.join_post_deploy("", "pytest") == "# unit tests (release request)\npytest"
    assert rules.split_post_deploy(rules.join_post_deploy("", "pytest")) == ("", "pytest")


def test_a_request_sets_what_it_names_and_keeps_the_rest():
    asked = {"test": "pytest", "start": "svc start", "dependencies": ["nginx"], "build": None}
    out = rules.with_settings(CONFIG, "production", asked, ["web2"])
    env = out["environments"]["production"]
    assert env["tasks"] == {
        "post_deploy": "make\n# unit tests (release request)\npytest",
        "pre_deploy": "echo hi",
        "post_release": "svc start",
    }
    assert env["requires"] == {"commands": ["php"], "packages": ["nginx"]}
    assert env["hosts"] == ["web1", "web2"]
    assert CONFIG["environments"]["production"]["hosts"] == ["web1"]  # a copy
    assert rules.settings_of(env) == {
        "dependencies": ["nginx"],
        "build": "make",
        "test": "pytest",
        "start": "svc start",
        "stop": "",
    }


def test_emptied_settings_leave_no_empty_keys():
    bare = {"project": "x", "environments": {"e": {"hosts": ["h"], "tasks": {"post_deploy": "m"}}}}
    asked = {"build": "", "dependencies": []}
    env = rules.with_settings(bare, "e", asked, [])["environments"]["e"]
    assert env == {"hosts": ["h"]}


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("make\x00", "control characters"),
        ("echo \x1b[2J", "control characters"),
        ("x" * (rules.COMMAND_LIMIT + 1), "longer than"),
        ("make\n  # unit tests (release request)  \nrm", "must not contain"),
    ],
)
def test_a_command_with_control_characters_or_the_marker_is_refused(value, why):
    with pytest.raises(ValidationError, match=why):
        rules.command(value, "build")


def test_a_command_keeps_its_lines_and_tabs():
    assert rules.command("\nmake \\\r\n\tall\n", "build") == "make \\\n\tall"


def test_a_window_ends_after_it_starts_and_closes_at_its_end():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    rules.window(now, now + timedelta(hours=1))
    rules.window(None, now)
    with pytest.raises(ValidationError, match="after its start"):
        rules.window(now, now)
    request = {"window": {"start": None, "end": now.isoformat()}}
    assert rules.window_closed(request, now - timedelta(seconds=1)) is None
    assert rules.window_closed(request, now) == now.isoformat()
    assert rules.window_closed(None, now) is None
    assert rules.window_closed({"window": {"end": None}}, now) is None
