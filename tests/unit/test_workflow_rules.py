"""Pure rules of the workflow layer: the ticket state machine, the permissions table, stats."""

from __future__ import annotations

import pytest

from ferryman.domain import tickets as t
from ferryman.domain.permissions import (
    ACTIONS,
    SUPER,
    USER,
    Role,
    Rule,
    markdown_table,
    role_allows,
)
from ferryman.errors import InternalError, InvalidTransition
from ferryman.services.stats import median, percentile, period_start


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (t.DRAFT, t.PENDING),
        (t.PENDING, t.APPROVED),
        (t.PENDING, t.REJECTED),
        (t.APPROVED, t.QUEUED),
        (t.QUEUED, t.RUNNING),
        (t.RUNNING, t.SUCCEEDED),
        (t.RUNNING, t.FAILED),
        (t.QUEUED, t.CANCELLED),
    ],
)
def test_the_documented_ticket_transitions_are_allowed(current, target):
    t.check_transition(1, current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (t.PENDING, t.QUEUED),
        (t.REJECTED, t.QUEUED),
        (t.REJECTED, t.APPROVED),
        (t.SUCCEEDED, t.QUEUED),
        (t.RUNNING, t.QUEUED),
        (t.DRAFT, t.QUEUED),
        (t.CANCELLED, t.PENDING),
    ],
)
def test_illegal_ticket_transitions_are_a_conflict_that_says_what_is_possible(current, target):
    with pytest.raises(InvalidTransition) as info:
        t.check_transition(7, current, target)
    assert f"ticket #7: it is {current}" in info.value.message
    assert info.value.http_status == 409


def test_final_ticket_states_lead_nowhere():
    assert all(not t.TRANSITIONS[state] for state in t.FINAL)


def test_roles_include_the_rights_of_the_roles_below_them():
    for action, rule in ACTIONS.items():
        allowed = [role_allows(r, action) for r in sorted(Role)]
        assert allowed == sorted(allowed), action  # once allowed, allowed for every higher role
        if rule.needs == SUPER:
            assert not any(allowed)
        if rule.needs == USER:
            assert all(allowed)


def test_nobody_outside_a_space_gets_a_space_action():
    assert not role_allows(None, "project.read")
    assert role_allows(None, "me.read")


def test_a_rule_needing_something_that_is_no_role_is_refused_when_the_table_is_built():
    with pytest.raises(InternalError, match="'supper'"):
        Rule("supper", True, "a typo would have been an assert failing at request time")
    assert Rule(SUPER, True, "fine").space_role is None
    assert Rule(Role.master, True, "fine").space_role is Role.master


def test_the_markdown_table_has_one_row_per_action():
    rows = [line for line in markdown_table().splitlines() if line.startswith("| `")]
    assert len(rows) == len(ACTIONS)


def test_percentiles_use_the_nearest_rank_and_the_median_averages_the_middle_pair():
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 0.95) == 19.0
    assert percentile([5.0], 0.95) == 5.0
    assert percentile([], 0.5) is None
    assert median([1.0, 3.0, 10.0, 20.0]) == 6.5


def test_weeks_start_on_monday():
    from datetime import datetime

    assert period_start(datetime(2026, 11, 22, 10, 0), "week") == "2026-11-16"
    assert period_start(datetime(2026, 11, 22, 10, 0), "day") == "2026-11-22"
