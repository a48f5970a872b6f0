"""The project form holds every key of an environment: a key added to the schema gets a field
(a YAML text in Advanced) without anyone having to remember the form."""

from __future__ import annotations

from ferryman.config.project import Environment
from ferryman.web import forms


def test_every_environment_key_has_exactly_one_field_in_one_section() -> None:
    placed = [k for _, _, keys, _ in forms.SECTIONS for k in keys]
    assert len(placed) == len(set(placed))
    expected = set(forms.LISTS + forms.NUMBERS + forms.FLAGS + forms.TEXTS + forms.YAMLS)
    expected |= {f"tasks.{h}" for h in forms.HOOKS}
    assert set(placed) == expected
    assert set(forms.LISTS + forms.NUMBERS + forms.FLAGS + forms.TEXTS + forms.YAMLS) | {
        "tasks"
    } == set(Environment.model_fields)


def test_a_key_the_form_has_no_field_for_round_trips_as_yaml_text() -> None:
    config = {
        "project": "shop",
        "repo": "ssh://git@127.0.0.1/shop.git",
        "environments": {"production": {"webroot": "/srv/www/shop"}},
    }
    for key in forms.OTHERS:  # whatever the schema grew since the form was written
        values = forms.to_form(config)
        values[f"env.production.{key}"] = "plain text"
        back = forms.from_form(values, ["production"], "default")
        assert back["environments"]["production"][key] == "plain text"


def test_timeouts_are_shown_and_entered_as_durations_as_in_the_project_file() -> None:
    """One duration format everywhere: the form shows ``10m`` where the file says ``600``
    (or ``10m``), takes ``90s`` back, and its placeholders are the defaults written so."""
    from ferryman.config.project import parse_project

    defaults = forms.defaults()
    assert defaults["task_timeout"] == "10m" and defaults["connect_timeout"] == "15s"
    config = {
        "project": "shop",
        "repo": "ssh://git@127.0.0.1/shop.git",
        "environments": {
            "production": {
                "hosts": ["127.0.0.2"],
                "webroot": "/srv/www/shop",
                "releases": "/srv/r/shop",
                "task_timeout": 600,
                "command_timeout": "90s",
                "transfer_timeout": 7200,
            }
        },
    }
    stored = parse_project(config).model_dump(mode="json", exclude_none=True)
    values = forms.to_form(stored)
    assert values["env.production.task_timeout"] == "10m"
    assert values["env.production.command_timeout"] == "90s"
    assert values["env.production.transfer_timeout"] == "2h"
    values["env.production.connect_timeout"] = "1m"
    back = parse_project(forms.from_form(values, ["production"], "default"))
    env = back.environments["production"]
    assert (env.task_timeout, env.command_timeout, env.transfer_timeout) == (600, 90, 7200)
    assert env.connect_timeout == 60
    assert forms.kinds()["task_timeout"] == "duration"


def test_durations_inside_yaml_blocks_are_shown_as_the_project_file_writes_them() -> None:
    """The stored ``between_batches: 30.0`` and ``unreachable_after: 300.0`` read ``30s`` and
    ``5m`` in the form's YAML blocks, and come back as the same seconds."""
    from ferryman.config.project import parse_project

    config = {
        "project": "shop",
        "repo": "ssh://git@127.0.0.1/shop.git",
        "environments": {
            "production": {
                "hosts": ["127.0.0.2", "127.0.0.3"],
                "webroot": "/srv/www/shop",
                "releases": "/srv/r/shop",
                "strategy": {"batches": "50%", "between_batches": 30},
                "health_check": [{"http": "http://{HOST}/", "timeout": 5, "interval": 1.5}],
                "mode": "pull",
                "pull": {"unreachable_after": 300},
            }
        },
    }
    stored = parse_project(config).model_dump(mode="json", exclude_none=True)
    values = forms.to_form(stored)
    assert "between_batches: 30s" in values["env.production.strategy"]
    assert "unreachable_after: 5m" in values["env.production.pull"]
    assert "timeout: 5s" in values["env.production.health_check"]
    assert "interval: 1.5s" in values["env.production.health_check"]
    assert ": 300.0" not in values["env.production.pull"]
    back = parse_project(forms.from_form(values, ["production"], "default"))
    assert back.model_dump(mode="json", exclude_none=True) == stored
