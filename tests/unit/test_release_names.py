"""Configurable release names: a template's result is one path-safe component, a hostile or
odd value is made safe (never refused silently), two deploys never share a name, and which
release is older comes from the records, not from how a template sorts."""

from __future__ import annotations

import pytest

from ferryman.config.project import parse_project
from ferryman.domain.release import (
    MAX_NAME,
    check_template,
    choose_prunable,
    is_safe_name,
    oldest_first,
    previous_release,
    render_name,
    rollback_target,
    safe_component,
    unique_name,
)
from ferryman.domain.validate import release as valid_release
from ferryman.errors import ConfigError, ValidationError

DESIGN = "{project}_{env}_{version}_{branch}_{time}_{user}"
VALUES = {
    "project": "shop",
    "env": "production",
    "version": "v1.2",
    "branch": "feature/login",
    "time": "20260101-120000",
    "user": "alice",
    "commit7": "abc1234",
    "ref": "feature/login",
    "deploy_id": "42",
}


def test_the_design_documents_template_names_a_release_with_every_field():
    assert render_name(DESIGN, VALUES) == (
        "shop_production_v1.2_feature-login_20260101-120000_alice"
    )
    assert render_name("{ref}-{commit7}-{deploy_id}", VALUES) == "feature-login-abc1234-42"


@pytest.mark.parametrize(
    "value",
    ["../../etc", "-rf", ".hidden", "a/b/../c", "x" * 500, "张三", "a\nb", "$(reboot)", "..", "/"],
)
def test_hostile_values_become_one_safe_component(value):
    name = render_name("{user}_{time}", dict(VALUES, user=value))
    assert is_safe_name(name), name
    assert "/" not in name and ".." not in name and not name.startswith(("-", "."))
    assert len(name) <= MAX_NAME


def test_a_value_with_nothing_safe_in_it_is_kept_as_a_hash_not_dropped():
    assert safe_component("张三").startswith("x")
    assert safe_component("张三") != safe_component("李四")
    assert safe_component("feature/x") == "feature-x"


def test_an_empty_field_takes_its_separator_with_it():
    assert render_name("{branch}_{version}", dict(VALUES, branch="")) == "v1.2"
    assert render_name("{version}_{branch}", dict(VALUES, branch="")) == "v1.2"
    assert render_name("{project}_{branch}_{time}", dict(VALUES, branch="")) == (
        "shop_20260101-120000"
    )


@pytest.mark.parametrize(
    "template",
    [
        "",
        "release",
        "{nope}_{time}",
        "../{time}",
        "a/{time}",
        "-{time}",
        ".{time}",
        "{time} x",
        "{time}..{ref}",
        "{{time}}",
        "x" * 200,
    ],
)
def test_a_bad_template_is_refused_naming_what_is_wrong(template):
    with pytest.raises(ValidationError) as caught:
        check_template(template)
    assert "release_name" in caught.value.message


def test_a_bad_template_in_a_project_file_names_its_path():
    data = {
        "project": "shop",
        "repo": "file:///srv/git/shop.git",
        "environments": {
            "production": {
                "hosts": ["127.0.0.1"],
                "webroot": "/srv/www/shop",
                "releases": "/srv/releases/shop",
                "release_name": "{project}/{nope}",
            }
        },
    }
    with pytest.raises(ConfigError) as caught:
        parse_project(data)
    assert any(
        line.startswith("environments/production/release_name") for line in caught.value.errors
    )


def test_two_deploys_in_the_same_second_get_two_names():
    first = unique_name("shop_20260101-120000", [], 41)
    second = unique_name("shop_20260101-120000", [first], 42)
    assert first == "shop_20260101-120000" and second == "shop_20260101-120000-42"


def test_a_rollback_may_name_a_templated_release_but_nothing_unsafe():
    assert valid_release("shop_production_v1.2_20260101-120000_alice") == (
        "shop_production_v1.2_20260101-120000_alice"
    )
    for bad in ("../x", "-x", ".x", "a/b", "", "x" * 200):
        with pytest.raises(ValidationError):
            valid_release(bad)


def test_older_means_older_in_the_records_even_when_names_sort_the_other_way():
    order = {"shop_v9": 1, "shop_v10": 2, "shop_v11": 3}
    assert oldest_first(order, order) == ["shop_v9", "shop_v10", "shop_v11"]
    assert previous_release(list(order), "shop_v11", order) == "shop_v10"
    good = {"h1": set(order)}
    assert rollback_target(good, ["h1"], {"h1": "shop_v11"}, set(), order) == "shop_v10"
    # pruning keeps the newest by the records, not v9 (which sorts last)
    doomed = choose_prunable(
        [*order, "shop_v12"],
        2,
        "shop_v12",
        "shop_v11",
        set(order) | {"shop_v12"},
        dict(order, shop_v12=4),
    )
    assert doomed == ["shop_v9", "shop_v10"]


def test_default_names_keep_their_order_without_records():
    names = ["20260101-120000_v1_abc1234", "20260102-120000_v2_def5678"]
    assert previous_release(names, names[1]) == names[0]


def test_a_good_template_is_taken_as_written():
    assert check_template(DESIGN) == DESIGN
    assert check_template("rel-{deploy_id}") == "rel-{deploy_id}"


def test_a_template_whose_fields_are_all_empty_here_is_refused_not_named_blank():
    with pytest.raises(ValidationError):
        render_name("{branch}", dict(VALUES, branch=""))
    assert render_name("{branch}x{version}", dict(VALUES, branch="")) == "xv1.2"


def test_default_names_are_recognised_and_templated_ones_only_by_the_records():
    from ferryman.domain.release import is_release_name

    assert is_release_name("20260101-120000_v1_abc1234-7")
    assert not is_release_name("shop_production_v1.2")
