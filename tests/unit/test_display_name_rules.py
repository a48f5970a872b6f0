"""Display names in any script beside the slug: kept as written, bounded, and never a name
that hides a control character, a line break or a direction override."""

from __future__ import annotations

import pytest

from ferryman.domain import display_name
from ferryman.errors import ValidationError


@pytest.mark.parametrize(
    "name", ["兼容-测试-1.0", "Boutique en ligne", "مرحبا", "🚢 ferry", "a\u200db", "x" * 100]
)
def test_a_name_in_any_script_is_kept_as_written(name):
    assert display_name.check(name) == name


def test_surrounding_spaces_go_and_empty_shows_the_slug():
    assert display_name.check("  兼容 测试  ") == "兼容 测试"
    assert display_name.shown("", "shop") == "shop"
    assert display_name.shown("商城", "shop") == "商城"


@pytest.mark.parametrize(
    "name",
    [
        "a\x00b",
        "a\nb",
        "a\tb",
        "a\x1b[31mb",
        "a\u2028b",
        "a\u2029b",
        "admin\u202egnp.exe",
        "a\u2066b",
    ],
)
def test_control_characters_breaks_and_direction_overrides_are_refused(name):
    with pytest.raises(ValidationError, match="no control characters"):
        display_name.check(name, "display_name")


def test_a_name_over_100_characters_is_refused():
    with pytest.raises(ValidationError, match="at most 100"):
        display_name.check("长" * 101)
