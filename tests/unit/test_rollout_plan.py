"""Gray-release planning as pure rules (``domain/rollout.py``): which hosts are the canary, how
the others are cut into batches, and the state a paused rollout keeps."""

from __future__ import annotations

import pytest

from ferryman.domain import rollout
from ferryman.domain.rollout import Rollout
from ferryman.errors import ValidationError

HOSTS = [f"127.0.9.{n}:22" for n in range(1, 11)]  # ten hosts, as host keys
NAMES = {"127.0.9.1:22": ["web1"], "127.0.9.2:22": ["web2"], "127.0.9.9:22": ["job1"]}
LABELS = {"127.0.9.3:22": ["canary", "bj"], "127.0.9.7:22": ["canary"], "127.0.9.9:22": ["job"]}


def _canary(spec):
    return rollout.canary_hosts(spec, HOSTS, NAMES, LABELS)


def test_no_canary_unless_one_is_asked_for():
    assert _canary(None) == []
    assert _canary("") == []
    assert _canary([]) == []


def test_a_canary_count_or_share_takes_the_first_hosts_in_their_order():
    assert _canary(2) == HOSTS[:2]
    assert _canary("2") == HOSTS[:2]
    assert _canary("25%") == HOSTS[:3]  # 2.5 hosts, rounded up
    assert _canary(50) == HOSTS  # more than there are: all of them


def test_a_canary_label_takes_every_host_carrying_it_in_host_order():
    assert _canary("label:canary") == ["127.0.9.3:22", "127.0.9.7:22"]
    with pytest.raises(ValidationError, match="no host has the label 'db'"):
        _canary("label:db")


def test_a_canary_list_names_hosts_by_key_address_or_server_name():
    assert _canary(["job1", "127.0.9.5", "127.0.9.2:22"]) == [
        "127.0.9.2:22",
        "127.0.9.5:22",
        "127.0.9.9:22",
    ]
    with pytest.raises(ValidationError, match=r"not hosts of this environment: \['web99'\]"):
        _canary(["web1", "web99"])


def test_batches_by_count_cut_the_hosts_after_the_canary_in_order():
    assert rollout.plan(HOSTS, HOSTS[:1], 4) == [
        HOSTS[:1],
        HOSTS[1:5],
        HOSTS[5:9],
        HOSTS[9:],
    ]


def test_batches_by_share_are_a_share_of_all_hosts_each():
    assert rollout.plan(HOSTS, [], "30%") == [HOSTS[:3], HOSTS[3:6], HOSTS[6:9], HOSTS[9:]]


def test_a_list_of_steps_gives_the_hosts_reached_after_each_batch():
    assert rollout.plan(HOSTS, HOSTS[:1], [1, "20%", "50%", "100%"]) == [
        HOSTS[:1],
        HOSTS[1:2],
        HOSTS[2:5],
        HOSTS[5:],
    ]


def test_steps_the_canary_already_covers_are_skipped_and_the_rest_is_a_final_batch():
    canary = _canary("label:canary")  # hosts 3 and 7
    batches = rollout.plan(HOSTS, canary, [1, 2, 6])
    assert batches == [
        canary,
        ["127.0.9.1:22", "127.0.9.2:22", "127.0.9.4:22", "127.0.9.5:22"],
        ["127.0.9.6:22", "127.0.9.8:22", "127.0.9.9:22", "127.0.9.10:22"],
    ]


@pytest.mark.parametrize("batches", [1, 3, "10%", "35%", "100%", [2, "50%"], ["90%"], 0, "0%"])
@pytest.mark.parametrize("canary", [[], HOSTS[:1], ["127.0.9.3:22", "127.0.9.7:22"]])
def test_every_plan_has_every_host_exactly_once_and_no_empty_batch(batches, canary):
    planned = rollout.plan(HOSTS, canary, batches)
    flat = [host for batch in planned for host in batch]
    assert sorted(flat) == sorted(HOSTS)
    assert len(flat) == len(set(flat))
    assert all(planned)
    if canary:
        assert planned[0] == canary


def test_a_count_of_zero_still_moves_one_host_per_batch():
    assert rollout.plan(HOSTS[:3], [], 0) == [[h] for h in HOSTS[:3]]


def test_a_rollout_state_survives_its_dict_form_and_ignores_keys_it_does_not_know():
    state = Rollout(
        batches=[HOSTS[:1], HOSTS[1:]],
        next_batch=1,
        previous={HOSTS[0]: "/srv/releases/site/r1", HOSTS[1]: None},
        switched=[HOSTS[0]],
        healthy=[HOSTS[0]],
        failed={},
        state="paused",
        paused_since="2026-01-01T00:00:00+00:00",
        pause_reason="after the canary",
        request="continue",
    )
    stored = state.to_dict()
    assert Rollout.from_dict(stored) == state
    assert Rollout.from_dict({**stored, "from_a_newer_version": 1}) == state
    assert Rollout.from_dict({"batches": [["h1"]]}) == Rollout(batches=[["h1"]])


@pytest.mark.parametrize("value", [[1], {"s": 1}, ("5m",), b"5m"])
def test_a_duration_that_is_not_text_or_a_number_is_refused_naming_it(value):
    with pytest.raises(ValidationError, match="pause: not a duration"):
        rollout.duration(value, "pause")
