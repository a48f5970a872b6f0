"""The migrations listing format (``commands/migrations.py``) and what a rollback crosses
(``domain/migrations.py``): pure, no fleet. The parser is attacked the way a hostile
repository would: huge output, control characters, lines that only look like migrations."""

from __future__ import annotations

import subprocess

import pytest

from ferryman.commands import migrations as fmt
from ferryman.config.project import parse_project
from ferryman.domain import migrations as rules
from ferryman.domain.variables import task_script
from ferryman.errors import ConfigError


def test_the_listing_format_reads_versions_and_marks_and_skips_comments():
    listing = fmt.parse(
        "# applied migrations\n\n20240101_add_col reversible\r\n2024.01.02:drop-t  irreversible\n"
    )
    assert [(m.version, m.reversible) for m in listing.applied] == [
        ("20240101_add_col", True),
        ("2024.01.02:drop-t", False),
    ]
    assert listing.rejected == 0 and not listing.truncated


@pytest.mark.parametrize(
    "line",
    [
        "20240101 reversible extra",  # trailing words
        "20240101\x1b[2K reversible",  # an escape sequence in the version
        "x reversible\r20240110_fake reversible",  # a carriage return hiding a second line
        "-rf reversible",  # a leading dash
        "../etc reversible",
        "20240101 maybe",
        "20240101\u202e reversible",  # a direction override
        "a" * 129 + " reversible",
        "20240101 REVERSIBLE",
    ],
)
def test_lines_that_only_look_like_migrations_are_rejected_and_shown_printable(line):
    listing = fmt.parse(line + "\n")
    assert listing.applied == []
    assert listing.rejected == 1
    (shown,) = listing.examples
    assert shown.isprintable() and len(shown) <= 120


def test_a_version_listed_twice_counts_once_and_irreversible_wins():
    listing = fmt.parse("m1 reversible\nm2 reversible\nm1 irreversible\nm1 reversible\n")
    assert [(m.version, m.reversible) for m in listing.applied] == [("m1", False), ("m2", True)]


def test_huge_output_is_cut_and_the_cut_line_is_never_read_as_a_version():
    text = "m0 reversible\n" + "".join(f"m{i} irreversible\n" for i in range(1, 200_000))
    cut_text, was_cut = fmt.cut(text)
    assert was_cut and len(cut_text.encode()) <= fmt.MAX_BYTES
    listing = fmt.parse(cut_text + "m1234567", truncated=was_cut)  # a half line at the end
    assert listing.truncated
    assert len(listing.applied) <= fmt.MAX_ENTRIES
    assert all(m.version != "m1234567" for m in listing.applied)


def test_more_versions_than_the_bound_are_not_kept():
    listing = fmt.parse("".join(f"v{i} reversible\n" for i in range(fmt.MAX_ENTRIES + 10)))
    assert len(listing.applied) == fmt.MAX_ENTRIES and listing.truncated


def test_the_bounded_script_cuts_the_output_on_the_host_and_keeps_the_exit_status(tmp_path):
    def run(command: str) -> subprocess.CompletedProcess[bytes]:
        script = task_script(fmt.bounded_script(command), {"PROJECT": "p"}, cwd=str(tmp_path))
        return subprocess.run(["bash", "-c", script], capture_output=True, timeout=30)

    flood = run("yes 'm1 reversible'")  # never ends by itself: the cut ends it
    assert flood.returncode == 0
    assert len(flood.stdout) == fmt.MAX_BYTES + 1
    failed = run("echo 'm1 reversible'; echo broken >&2; exit 7")
    assert failed.returncode == 7 and failed.stdout == b"m1 reversible\n"
    named = run("echo {PROJECT}_init reversible")
    assert named.stdout == b"p_init reversible\n"


def L(deploy_id, release, *applied, ok=True, error=""):  # a listing, briefly
    return rules.Listing(deploy_id, release, ok, tuple(applied), error)


A, B, C = "20240101-000000_a", "20240102-000000_b", "20240103-000000_c"


def test_going_back_crosses_what_the_database_got_since_the_target_was_live():
    listings = [
        L(1, A, ("m1", True)),
        L(2, B, ("m1", True), ("m2", False)),
        L(3, C, ("m1", True), ("m2", False), ("m3", True)),
    ]
    to_a = rules.crossing(listings, A, 1)
    assert to_a.crossed == [("m2", False), ("m3", True)]
    assert to_a.irreversible == ["m2"] and to_a.blocked
    to_b = rules.crossing(listings, B, 2)
    assert to_b.crossed == [("m3", True)] and not to_b.blocked
    assert "m2" in rules.describe(to_a) and A in rules.describe(to_a)


def test_after_a_forced_rollback_the_newest_listing_of_the_target_counts():
    listings = [
        L(1, A, ("m1", True)),
        L(2, B, ("m1", True), ("m2", False)),
        L(3, A, ("m1", True), ("m2", False)),  # the forced rollback listed again
    ]
    assert not rules.crossing(listings, A, 1).blocked
    assert rules.forward(listings, B) == [("m2", False)]


def test_a_release_never_listed_reads_the_listing_before_it_or_else_the_oldest():
    listings = [L(5, B, ("m1", True), ("m2", False)), L(6, C, ("m1", True), ("m2", False))]
    older = rules.crossing(listings, A, 2)  # deployed before any listing: the oldest is its
    assert older.crossed == [] and "deploy #5" in older.basis
    between = [L(1, A, ("m1", True)), *listings]
    assert rules.crossing(between, "20240101-120000_x", 3).irreversible == ["m2"]


def test_a_failed_newest_listing_blocks_every_rollback_until_forced():
    listings = [L(1, A, ("m1", True)), L(2, B, ok=False, error="exit 3: db down")]
    cross = rules.crossing(listings, A, 1)
    assert cross.blocked and cross.irreversible == []
    assert "exit 3: db down" in rules.describe(cross)
    assert rules.crossing([], A, 1).to_dict()["blocked"] is False


def _env(**keys):
    return {
        "project": "p",
        "repo": "ssh://git@127.0.0.1/p.git",
        "environments": {
            "production": {
                "hosts": ["127.0.0.1"],
                "webroot": "/srv/www/p",
                "releases": "/srv/releases/p",
                **keys,
            }
        },
    }


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"verify_served": {"http": "http://10.0.0.1/version"}}, "host must be {HOST}"),
        ({"verify_served": {"http": "http://{HOST}.evil.example/v"}}, "host must be {HOST}"),
        ({"verify_served": {"http": "http://x@{HOST}/v"}}, "no user or password"),
        ({"verify_served": {"http": "file:///etc/passwd"}}, "http:// or https://"),
        ({"verify_served": {"http": "http://{HOST}/v", "expect": "{SECRET}"}}, "unknown variable"),
        ({"verify_served": {"http": "http://{HOST}/v", "expect": "a\nb"}}, "control characters"),
        ({"verify_served": {"http": "http://{HOST}/v", "header": "X: y"}}, "header name"),
        ({"verify_served": {"http": "http://{HOST}/v", "attempts": 61}}, "attempts"),
        ({"verify_served": {"http": "http://{HOST}/v", "interval": "2m"}}, "at most 60s"),
        ({"verify_served": {"http": "http://{HOST}/v", "timeout": 0}}, "more than 0s"),
        ({"migrations": {"command": "  "}}, "command"),
        ({"migrations": {"command": "x", "run_on": "everywhere"}}, "run_on"),
        ({"migrations": {"command": "x", "timeout": "1h"}}, "at most 600s"),
    ],
)
def test_bad_verify_served_and_migrations_keys_are_refused_by_path(keys, message):
    with pytest.raises(ConfigError) as refused:
        parse_project(_env(**keys))
    assert any(message in line for line in refused.value.details["errors"]), refused.value.details


def test_the_defaults_of_verify_served_and_migrations():
    env = parse_project(
        _env(verify_served={"http": "http://{HOST}:8080/version"}, migrations={"command": "x"})
    ).environments["production"]
    assert env.verify_served is not None and env.migrations is not None
    assert (env.verify_served.expect, env.verify_served.attempts) == ("{COMMIT}", 10)
    assert env.verify_served.worst_seconds == 10 * 5 + 9 * 1
    assert (env.migrations.run_on, env.migrations.timeout) == ("target", 60.0)


def test_what_each_release_brought_in_and_the_edges_of_the_rules():
    listings = [
        L(1, A, ("m1", True)),
        L(2, B, ok=False, error="timeout"),
        L(3, B, ("m1", True), ("m2", False)),
    ]
    assert rules.forward(listings, A) == []  # the first listing: what came before is unknown
    assert rules.forward(listings, B) == [("m2", False)]  # the failed listing is skipped
    assert rules.forward(listings, C) == []  # never listed
    assert rules.crossing(listings, C, None).basis.startswith("deploy #1")  # no deploy known
    many = rules.Crossing(A, [(f"m{i}", False) for i in range(25)])
    assert rules.describe(many, limit=20).endswith("m19 and 5 more")
    assert many.to_dict()["irreversible"] == [f"m{i}" for i in range(25)]


def test_the_listing_helpers_keep_short_output_whole():
    assert fmt.cut("m1 reversible\n") == ("m1 reversible\n", False)
    assert fmt.is_version("20240101_add") and not fmt.is_version("-x")
    assert fmt.Migration("m1", False).to_dict() == {"version": "m1", "reversible": False}
    assert fmt.parse("", truncated=True).applied == []
