"""Display names in any script beside the slug: kept as written, bounded, and never a name
that hides a control character, a line break or a direction override."""

from __future__ import annotations

import re

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


def test_the_arabic_letter_mark_is_refused_like_the_other_direction_marks():
    for mark in ("\u200e", "\u200f", "\u061c"):
        with pytest.raises(ValidationError, match="direction overrides"):
            display_name.check(f"Acme{mark} 1", "display_name")


@pytest.mark.parametrize(
    ("name", "found"),
    [
        ("\u200b", "U+200B"),  # zero width space
        ("Acme\u2060", "U+2060"),  # word joiner
        ("\ufeffAcme", "U+FEFF"),  # byte order mark
        ("Acme\U000e0041\U000e0063", "U+E0041"),  # tag characters: hidden text
        ("co\u00adop", "U+00AD"),  # soft hyphen
    ],
)
def test_invisible_formatting_characters_are_refused_by_code_point(name, found):
    with pytest.raises(
        ValidationError, match=f"display_name: no invisible characters.*{re.escape(found)}"
    ):
        display_name.check(name, "display_name")
    with pytest.raises(ValidationError, match=r"^no invisible characters"):
        display_name.check(name, None)


def test_a_name_of_joiners_alone_shows_nothing_and_is_refused():
    with pytest.raises(ValidationError, match="display_name: a name must show something"):
        display_name.check("\u200d\u200c", "display_name")
    with pytest.raises(ValidationError, match=r"^a name must show something"):
        display_name.check(" \u200d ", None)


def test_a_list_shows_display_names_and_tells_apart_those_that_read_the_same():
    shown = display_name.labels(
        [
            ("acme", "Acme production"),
            ("other", "acme production"),  # the same but for letter case
            ("third", "Ａｃｍｅ\u200d production"),  # full-width letters and a joiner
            ("shop", "商城"),
            ("plain", ""),
        ]
    )
    assert shown == {
        "acme": "Acme production (acme)",
        "other": "acme production (other)",
        "third": "Ａｃｍｅ\u200d production (third)",
        "shop": "商城",
        "plain": "plain",
    }


def test_a_display_name_that_reads_as_another_entrys_slug_shows_its_own_slug():
    shown = display_name.labels([("acme", ""), ("evil", "ACME"), ("mine", "Mine")])
    assert shown == {"acme": "acme", "evil": "ACME (evil)", "mine": "Mine"}
