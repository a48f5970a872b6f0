"""Masking secret values (``domain/masking.py``) in everything Ferryman stores or shows."""

from __future__ import annotations

from ferryman.domain.masking import MASK, Masker


def test_every_occurrence_of_every_secret_becomes_the_mask():
    mask = Masker(["hunter2-pass", "tok_abcdef"])
    assert (
        mask("login hunter2-pass with tok_abcdef, again hunter2-pass")
        == f"login {MASK} with {MASK}, again {MASK}"
    )


def test_a_secret_containing_another_is_masked_whole():
    mask = Masker(["abcd", "xxabcdxx"])
    assert mask("value=xxabcdxx and abcd") == f"value={MASK} and {MASK}"


def test_each_line_of_a_multi_line_secret_is_masked_on_its_own_too():
    key = "-----BEGIN KEY-----\nMIIEsecretbody\n-----END KEY-----"
    mask = Masker([key])
    assert mask(f"key:\n{key}\n") == f"key:\n{MASK}\n"
    # a tool that prints one line of it alone
    assert mask("bad line: MIIEsecretbody") == f"bad line: {MASK}"


def test_values_too_short_to_be_told_from_ordinary_text_are_not_masked():
    mask = Masker(["on", "123", "   ", "\n\n"])
    assert not mask
    assert mask("turn it on 123 times") == "turn it on 123 times"


def test_a_masker_without_secrets_returns_text_unchanged():
    mask = Masker([])
    assert not mask
    assert mask("nothing secret here") == "nothing secret here"
    assert Masker(["long-enough"])
