"""``tasks.restart``: what an emergency rollback runs to restart the service."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferryman.config.project import load_project_yaml, parse_project
from ferryman.errors import ConfigError


def _tasks(tasks: dict[str, str]):
    env = {"hosts": ["10.0.0.13"], "webroot": "/data/www/x", "releases": "/data/release/x"}
    config = {"project": "x", "repo": "ssh://git@10.0.0.12/x.git", "environments": {}}
    config["environments"] = {"production": {**env, "tasks": tasks}}
    return parse_project(config).environment("production").tasks


def test_no_restart_task_unless_one_is_configured():
    assert _tasks({"post_release": "echo hi\n"}).restart_script == ""


def test_restart_post_release_reuses_the_post_release_script():
    tasks = _tasks({"post_release": "systemctl reload php-fpm\n", "restart": "post_release"})
    assert tasks.restart_script == "systemctl reload php-fpm\n"


def test_a_restart_script_of_its_own_is_run_as_written():
    assert _tasks({"restart": "sudo systemctl restart app\n"}).restart_script == (
        "sudo systemctl restart app\n"
    )


def test_restart_post_release_without_a_post_release_is_refused_by_path():
    with pytest.raises(ConfigError) as caught:
        _tasks({"restart": "post_release"})
    assert caught.value.errors == [
        "environments/production/tasks: restart: post_release names the post_release task, "
        "which is empty"
    ]


def test_the_documented_example_restarts_with_its_post_release():
    text = (Path(__file__).parents[2] / "docs" / "config.md").read_text()
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    tasks = load_project_yaml(example).environment("production").tasks
    assert tasks.restart == "post_release"
    assert tasks.restart_script == tasks.post_release != ""
