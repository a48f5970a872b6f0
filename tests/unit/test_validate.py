"""Validation of refs and hosts: what reaches git, svn and a shell."""

from __future__ import annotations

import pytest

from ferryman.domain import validate
from ferryman.errors import ValidationError


@pytest.mark.parametrize(
    "ref",
    [
        "master",
        "v1.2.3",
        "feature/login",
        "release-2026_11",
        "0123abcd" * 5,
        "trunk@123",
        "tags/v1",
    ],
)
def test_ordinary_refs_pass(ref):
    assert validate.ref(ref) == ref


@pytest.mark.parametrize(
    "ref",
    [
        "--upload-pack=touch /tmp/x",
        "$(touch /tmp/x)",
        "a;b",
        "a\nb",
        "a b",
        "`id`",
        "-c",
        "a..b",
        "../x",
        "x/",
        ".hidden",
        "a@{1}",
        "",
        "x.lock",
        "a|b",
        "a&b",
        "a'b",
    ],
)
def test_dangerous_or_malformed_refs_are_refused(ref):
    with pytest.raises(ValidationError):
        validate.ref(ref)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("10.0.0.13", ("10.0.0.13", 22, None)),
        ("10.0.0.14:2222", ("10.0.0.14", 2222, None)),
        ("www@10.0.0.15", ("10.0.0.15", 22, "www")),
        ("deploy@web-1.example.com:22", ("web-1.example.com", 22, "deploy")),
        ("[::1]:2200", ("::1", 2200, None)),
    ],
)
def test_hosts_parse_into_address_port_and_user(text, expected):
    spec = validate.host(text)
    assert (spec.address, spec.port, spec.user) == expected


@pytest.mark.parametrize(
    "text",
    [
        "a b",
        "-oProxyCommand=touch /tmp/x",
        "h:0",
        "h:99999",
        "h;x",
        "$(x)",
        "u@",
        "@h",
        "h\n",
        "::1",
        "1.2.3.4.5",
    ],
)
def test_bad_hosts_are_refused(text):
    with pytest.raises(ValidationError, match="not a host"):
        validate.host(text)


def test_host_keys_are_stable_identities():
    assert validate.host("www@10.0.0.15").key == "10.0.0.15"
    assert validate.host("10.0.0.14:2222").key == "10.0.0.14:2222"
    assert validate.host("[::1]:22").key == "[::1]"


@pytest.mark.parametrize("text", ["¹", "٣", "１２", "1²"])
def test_digits_that_python_calls_digits_but_int_refuses_are_a_validation_error(text):
    """Found by the property tests: ``"¹".isdigit()`` is true and ``int("¹")`` fails."""
    from ferryman.domain import rollout
    from ferryman.domain.validate import is_digits

    assert not is_digits(text)
    with pytest.raises(ValidationError):
        rollout.amount(text, 10, "batches")
    with pytest.raises(ValidationError):
        validate.host(f"example.com:{text}")


def test_a_reference_written_as_digits_is_a_row_id_and_one_past_every_column_is_no_row():
    from ferryman.domain.validate import MAX_ROW_ID, row_id

    assert row_id(7) == 7 and row_id("42") == 42
    assert row_id("shop") is None and row_id("٣") is None and row_id("") is None
    assert row_id(str(MAX_ROW_ID)) == MAX_ROW_ID
    assert row_id(str(MAX_ROW_ID + 1)) == 0 and row_id("9" * 30) == 0
    assert row_id(0) == 0 and row_id(-5) == 0 and row_id("0") == 0
