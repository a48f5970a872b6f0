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
