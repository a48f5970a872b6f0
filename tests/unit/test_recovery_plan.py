"""The recovery rule as a pure decision: from what every host serves, what it served before
and which releases it holds, what recovery does — every host on one release."""

from __future__ import annotations

from ferryman.domain.recovery import FORWARD, REVERT, SUCCESS, HostView, describe, plan

R = "/srv/releases/app"
OLD, NEW = "20260101-000000_v1_aaaaaaa", "20260102-000000_v2_bbbbbbb"


def view(live: str | None, before: str, *complete: str) -> HostView:
    link = f"{R}/{live}" if live else None
    return HostView(
        live=live,
        link=link,
        before=before,
        complete=frozenset(complete),
        present=frozenset(complete),
    )


def test_a_committed_deploy_every_host_serves_is_recorded_as_a_success():
    hosts = {"a": view(NEW, OLD, OLD, NEW), "b": view(NEW, OLD, OLD, NEW)}
    decided = plan("deploy", R, NEW, "", True, hosts)
    assert decided.outcome == SUCCESS and not decided.switch and not decided.remove


def test_a_half_switched_deploy_goes_back_everywhere_and_its_release_is_removed():
    hosts = {"a": view(NEW, OLD, OLD, NEW), "b": view(OLD, OLD, OLD, NEW)}
    decided = plan("deploy", R, NEW, "", False, hosts)
    assert decided.outcome == REVERT
    assert decided.switch == {"a": f"{R}/{OLD}"}
    assert decided.remove == {"a": NEW, "b": NEW}
    assert decided.live == {"a": OLD, "b": OLD}


def test_a_committed_deploy_not_on_every_host_is_still_undone():
    hosts = {"a": view(NEW, OLD, OLD, NEW), "b": view(OLD, OLD, OLD, NEW)}
    assert plan("config", R, NEW, "", True, hosts).outcome == REVERT


def test_a_first_deploy_loses_only_the_link_it_made():
    hosts = {
        "a": view(NEW, "", NEW),
        "b": view(None, "", NEW),
        "c": HostView(live=None, link="/elsewhere", before="", complete=frozenset()),
    }
    decided = plan("deploy", R, NEW, "", False, hosts)
    assert decided.unlink == ["a"] and not decided.switch and not decided.problems
    assert decided.live == {"a": None, "b": None, "c": None}


def test_a_host_that_served_a_foreign_link_gets_it_back():
    hosts = {"a": view(NEW, "/opt/legacy", NEW)}
    decided = plan("deploy", R, NEW, "", False, hosts)
    assert decided.switch == {"a": "/opt/legacy"} and decided.remove == {"a": NEW}


def test_a_host_whose_old_release_is_gone_is_named_and_kept_serving():
    hosts = {"a": view(NEW, OLD, NEW), "b": view(NEW, OLD, OLD, NEW)}
    decided = plan("deploy", R, NEW, "", False, hosts)
    assert "a" in decided.problems and "a" not in decided.switch
    assert "a" not in decided.remove  # never remove what a host serves


def test_a_rollback_goes_forward_to_its_target_when_complete_everywhere():
    hosts = {"a": view(OLD, NEW, OLD, NEW), "b": view(NEW, NEW, OLD, NEW)}
    decided = plan("rollback", R, "", OLD, False, hosts)
    assert decided.outcome == FORWARD and decided.switch == {"b": f"{R}/{OLD}"}
    assert not decided.remove  # a rollback never removes a release


def test_a_finished_rollback_every_host_serves_is_a_success():
    hosts = {"a": view(OLD, NEW, OLD, NEW), "b": view(OLD, NEW, OLD, NEW)}
    assert plan("rollback", R, "", OLD, True, hosts).outcome == SUCCESS


def test_a_rollback_whose_target_is_missing_somewhere_is_undone_instead():
    hosts = {"a": view(OLD, NEW, OLD, NEW), "b": view(NEW, NEW, NEW)}
    decided = plan("rollback", R, "", OLD, False, hosts)
    assert decided.outcome == REVERT and decided.switch == {"a": f"{R}/{NEW}"}
    assert not decided.remove


def test_the_summary_of_an_undone_deploy_says_every_host_went_back():
    hosts = {"a": view(NEW, OLD, OLD, NEW), "b": view(OLD, OLD, OLD, NEW)}
    decided = plan("deploy", R, NEW, "", False, hosts)
    text = describe(decided)
    assert text == f"; every host was put back on the release it served before (now: {OLD})"
    decided.problems["c"] = "could not be reached"
    assert describe(decided).startswith(
        "; the other hosts were put back on the releases they served before"
    )


def test_the_summary_never_says_every_host_when_one_is_not_in_order():
    # every reachable host had finished; one could not be reached: nothing was put back
    decided = plan("deploy", R, NEW, "", True, {"a": view(NEW, OLD, OLD, NEW)})
    decided.problems["b"] = "could not be reached"
    text = describe(decided)
    assert "put back" not in text and "every host" not in text
    assert text == (
        f"; the other hosts had finished this deploy (now: {NEW}); "
        "not in order: b: could not be reached"
    )


def test_the_summary_of_a_rollback_carried_forward_names_what_is_not_in_order():
    hosts = {"a": view(NEW, NEW, OLD, NEW), "b": view(OLD, NEW, OLD, NEW)}
    decided = plan("rollback", R, "", OLD, False, hosts)
    assert describe(decided) == (
        f"; the rollback was completed on every host, without its hooks (now: {OLD})"
    )
    decided.problems["c"] = "could not be reached"
    assert describe(decided).startswith("; the rollback was completed on the other hosts")
