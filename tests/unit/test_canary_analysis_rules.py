"""The pure rules of metric canary analysis: the ``compare`` language (and what it refuses:
code, names, calls, anything but its tiny grammar), ``{HOSTS_RE}`` filled safely into
PromQL, Prometheus answers read into one number, and when an analysis has failed."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from pydantic import ValidationError as PydanticValidationError

from ferryman.config.analysis import Analysis, prometheus_url
from ferryman.config.project import parse_project
from ferryman.domain import analysis as rules
from ferryman.domain.analysis import Unanswered
from ferryman.errors import ConfigError, ValidationError

QUERY = 'sum(rate(http_requests_total{instance=~"{HOSTS_RE}",code=~"5.."}[1m]))'


# --- compare ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canary", "baseline", "holds"),
    [
        ("canary <= baseline * 1.5 + 0.001", 0.0101, 0.01, True),
        ("canary <= baseline * 1.5 + 0.001", 0.02, 0.01, False),
        ("canary <= baseline * 1.2", 0.25, 0.2, False),
        ("canary < 0.05", 0.01, None, True),
        ("canary >= baseline - 1", 5.0, 6.0, True),
        ("canary > baseline", 1.0, 1.0, False),
        ("canary == baseline", 2.0, 2.0, True),
        ("canary != baseline", 2.0, 2.0, False),
        ("canary / baseline <= 2", 3.0, 2.0, True),
        ("(canary - baseline) * 100 <= 5", 0.30, 0.26, True),
        ("-canary >= -1", 0.5, None, True),
        ("canary <= 1e-3", 0.0001, None, True),
        ("canary <= .5", 0.5, None, True),
        ("2 * (baseline + 1) >= canary", 4.0, 1.0, True),
    ],
)
def test_compare_expressions_evaluate_by_arithmetic_precedence(text, canary, baseline, holds):
    assert rules.parse_compare(text).holds(canary, baseline) is holds


def test_a_compare_knows_whether_it_needs_the_baseline():
    assert rules.parse_compare("canary <= baseline * 2").uses_baseline
    assert not rules.parse_compare("canary <= 0.01").uses_baseline


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("__import__('os').system('touch /tmp/pwned') or canary < 1", "unexpected"),
        ("canary.__class__ <= 1", "unexpected"),
        ("open('/etc/passwd') <= canary", "unexpected"),
        ("open <= canary", "unknown name 'open'"),
        ("exec <= canary", "unknown name"),
        ("canary <= baseline; import os", "unexpected"),
        ("canary <= baseline ** 2", "unexpected"),
        ("canary <= 1 <= 2", "exactly one comparison"),
        ("canary + 1", "exactly one comparison"),
        ("canary = 1", "unexpected"),
        ("baseline <= 1", "must name canary"),
        ("canary <= (1 + 2", "not closed"),
        ("canary <= 1 + ", "ends too early"),
        ("canary <= 1 2", "unexpected '2'"),
        ("canary <= )", "unexpected ')'"),
        ("canary <= " + "(" * 9 + "1" + ")" * 9, "nested"),
        ("canary <= " + "-" * 9 + "1", "nested"),
        ("canary <= " + " + ".join(["1"] * 40), "too long"),
        ("canary <= 1" + " " * 200, "longer than"),
        ("canary <= 1e999", "not a finite number"),
        ("", "empty"),
        ("   ", "empty"),
    ],
)
def test_a_compare_outside_the_tiny_grammar_is_refused(text, why):
    with pytest.raises(ValidationError, match=re.escape(why)):
        rules.parse_compare(text)


def test_a_compare_that_cannot_be_decided_is_unanswered_not_false():
    with pytest.raises(Unanswered, match="divides by zero"):
        rules.parse_compare("canary / baseline <= 1.2").holds(1.0, 0.0)
    with pytest.raises(Unanswered, match="no baseline"):
        rules.parse_compare("canary <= baseline").holds(1.0, None)
    with pytest.raises(Unanswered, match="not a number"):
        rules.parse_compare("canary <= baseline").holds(math.nan, 1.0)
    assert not rules.parse_compare("canary <= baseline").holds(math.inf, 1.0)


def test_a_compare_is_not_a_string_refused():
    with pytest.raises(ValidationError, match="empty"):
        rules.parse_compare(3)  # type: ignore[arg-type]


# --- {HOSTS_RE} ---------------------------------------------------------------------------


def test_hosts_are_escaped_for_re2_and_match_with_or_without_a_port():
    regex = rules.hosts_regex(["127.0.140.3", "web-1", "127.0.140.3", ""])
    assert regex == r"(?:127\.0\.140\.3|web\-1)(?::[0-9]+)?"
    assert re.fullmatch(regex, "127.0.140.3:9100")
    assert re.fullmatch(regex, "web-1")
    assert not re.fullmatch(regex, "127.0.140.33:9100")
    assert not re.fullmatch(regex, "127x0x140x3")
    with pytest.raises(ValidationError, match="no hosts"):
        rules.hosts_regex([])


def test_hosts_re_is_escaped_again_for_the_quotes_around_it():
    regex = rules.hosts_regex(["10.0.0.1"])
    assert rules.fill(QUERY, regex) == (
        'sum(rate(http_requests_total{instance=~"(?:10\\\\.0\\\\.0\\\\.1)(?::[0-9]+)?",'
        'code=~"5.."}[1m]))'
    )
    single = "up{instance=~'{HOSTS_RE}'}"
    assert rules.fill(single, regex) == "up{instance=~'(?:10\\\\.0\\\\.0\\\\.1)(?::[0-9]+)?'}"
    raw = "up{instance=~`{HOSTS_RE}`}"
    assert rules.fill(raw, regex) == r"up{instance=~`(?:10\.0\.0\.1)(?::[0-9]+)?`}"
    two = 'a{i=~"{HOSTS_RE}"} / b{i=~"{HOSTS_RE}", x="y"} # it\'s a comment'
    filled = rules.fill(two, "h")
    assert filled == 'a{i=~"h"} / b{i=~"h", x="y"} # it\'s a comment'


def test_a_host_name_can_never_end_the_promql_string_it_is_filled_into():
    # a name holding a quote (never a valid host, but the escaping does not rely on that)
    assert rules.fill('up{i=~"{HOSTS_RE}"}', 'x"} or vector(1) #') == (
        'up{i=~"x\\"} or vector(1) #"}'
    )
    with pytest.raises(ValidationError, match="cannot stand"):
        rules.fill("up{i=~`{HOSTS_RE}`}", "x`y")


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ("sum(up)", "must select hosts with {HOSTS_RE}"),
        ("up{instance=~{HOSTS_RE}}", "goes inside quotes"),
        ('up{instance=~"x"} # "{HOSTS_RE}"', "goes inside quotes"),
        ('up{instance=~"{HOSTS_RE}}', "not closed"),
        ('up{instance=~"{HOSTS_RE}"}' + " " * 2000, "longer than"),
        ('up{instance=~"{HOSTS_RE}"}\x00', "control characters"),
        ('up{instance=~"{HOSTS_RE}"}\r', "control characters"),
        ("", "empty"),
    ],
)
def test_a_query_is_refused_unless_hosts_re_stands_in_quotes(query, why):
    with pytest.raises(ValidationError, match=re.escape(why)):
        rules.check_query(query)


def test_a_query_may_span_lines_and_escape_its_quotes():
    query = 'sum(\n  rate(x{a="q\\"t",\tinstance=~"{HOSTS_RE}"}[1m])\n)'
    assert rules.check_query(query) == query
    assert 'instance=~"h"' in rules.fill(query, "h")


# --- answers ------------------------------------------------------------------------------


def _vector(*values: str) -> dict:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": {}, "value": [1.5, v]} for v in values],
        },
    }


def test_an_answer_of_one_sample_or_a_scalar_is_one_number():
    assert rules.value_of(_vector("0.25")) == 0.25
    assert rules.value_of(_vector("+Inf")) == math.inf
    scalar = {"status": "success", "data": {"resultType": "scalar", "result": [1, "3"]}}
    assert rules.value_of(scalar) == 3.0


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (_vector(), "no data"),
        (_vector("NaN"), "NaN"),
        (_vector("1", "2"), "2 series; aggregate"),
        (_vector("x" * 100), "not a number"),
        (_vector("1e5x"), "not a number"),
        ({"status": "error", "error": "parse error at char 3"}, "refused the query: parse error"),
        ({"status": "error", "error": ["x"]}, "no reason given"),
        ([1, 2], "not a JSON object"),
        ({"status": "success"}, "no data"),
        ({"status": "success", "data": {"resultType": "matrix", "result": []}}, "a matrix"),
        ({"status": "success", "data": {"resultType": "vector", "result": {}}}, "not a list"),
        ({"status": "success", "data": {"resultType": "vector", "result": [1]}}, "not an object"),
        (
            {"status": "success", "data": {"resultType": "vector", "result": [{"value": 1}]}},
            "not [time, value]",
        ),
        (
            {"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, 2]}]}},
            "not a number",
        ),
    ],
)
def test_anything_but_one_number_is_unanswered_with_why(answer, why):
    with pytest.raises(Unanswered, match=re.escape(why)):
        rules.value_of(answer)


# --- verdicts -----------------------------------------------------------------------------


def test_a_metric_fails_the_analysis_only_past_its_failure_limit():
    compare = rules.parse_compare("canary <= baseline * 1.2")
    rows = [
        rules.judge(1, "p99", compare, 0.3, 0.2),
        rules.judge(1, "errors", compare, 0.1, 0.2),
        rules.judge(2, "p99", compare, 0.3, 0.2),
    ]
    assert [r.verdict for r in rows] == ["fail", "pass", "fail"]
    assert rows[0].detail == "canary <= baseline * 1.2"
    assert rules.failures(rows) == {"p99": 2}
    assert rules.failed_metric(rows, 2) is None
    assert rules.failed_metric(rows, 1) == "p99"
    broken = rules.judge(3, "p99", rules.parse_compare("canary / baseline < 1"), 1.0, 0.0)
    assert broken.verdict == "error" and "divides by zero" in broken.detail


def test_a_measurement_is_shown_as_one_line():
    row = rules.Measurement(2, "p99", 0.25, None, "error", "baseline: no data")
    assert row.shown() == "p99 canary=0.25 baseline=- error (baseline: no data)"


def test_an_analysis_measures_once_per_interval_at_least_once():
    assert rules.intervals(300, 30) == 10
    assert rules.intervals(3, 1) == 3
    assert rules.intervals(5, 2) == 2
    assert rules.intervals(1, 30) == 1


# --- the analysis: block ------------------------------------------------------------------


def _block(**keys: object) -> dict:
    return {
        "prometheus": "http://prometheus.internal:9090",
        "metrics": [{"name": "error-rate", "query": QUERY, "compare": "canary <= baseline"}],
        **keys,
    }


def test_the_issue_s_example_is_a_valid_analysis_block():
    parsed = Analysis.model_validate(
        _block(
            interval="30s",
            duration="5m",
            failure_limit=2,
            metrics=[
                {
                    "name": "error-rate",
                    "query": 'sum(rate(http_requests_total{instance=~"{HOSTS_RE}",'
                    'code=~"5.."}[1m])) / '
                    'sum(rate(http_requests_total{instance=~"{HOSTS_RE}"}[1m]))',
                    "compare": "canary <= baseline * 1.5 + 0.001",
                },
                {
                    "name": "p99",
                    "query": "histogram_quantile(0.99, sum by (le) (rate("
                    'http_request_duration_seconds_bucket{instance=~"{HOSTS_RE}"}[1m])))',
                    "compare": "canary <= baseline * 1.2",
                },
            ],
        )
    )
    assert (parsed.interval, parsed.duration, parsed.failure_limit) == (30.0, 300.0, 2)
    assert parsed.query_timeout == 10.0
    assert Analysis.model_validate(_block(interval="1s", duration="3s")).query_timeout == 5.0
    assert parsed.metrics[1].parsed.op == "<="


@pytest.mark.parametrize(
    ("keys", "why"),
    [
        ({"prometheus": "ftp://p:21"}, "an http:// or https:// URL"),
        ({"prometheus": "http://user:pw@p:9090"}, "no user or password"),
        ({"prometheus": "http://p:9090/?x=1"}, "no ?query"),
        ({"prometheus": "http://p 9090"}, "spaces or control characters"),
        ({"prometheus": "http://[::1"}, "not a URL"),
        ({"prometheus": "http://p/" + "a" * 500}, "longer than"),
        ({"prometheus": 9090}, "expected a string"),
        ({"interval": "0.5s"}, "between 1s and 3600s"),
        ({"interval": "soon"}, "not a duration"),
        ({"interval": "1m", "duration": "30s"}, "at least one interval"),
        ({"duration": "25h"}, "between 1s and 86400s"),
        ({"interval": "1s", "duration": "1001s"}, "at most 1000 intervals"),
        ({"failure_limit": -1}, "greater than or equal to 0"),
        ({"metrics": []}, "at least 1 item"),
        ({"timeout": "5s"}, "Extra inputs are not permitted"),
    ],
)
def test_an_analysis_block_with_a_bad_key_is_refused_naming_it(keys, why):
    with pytest.raises(PydanticValidationError, match=re.escape(why)):
        Analysis.model_validate(_block(**keys))


def test_metric_names_are_names_and_unique():
    same = {"name": "e", "query": QUERY, "compare": "canary < 1"}
    with pytest.raises(PydanticValidationError, match="a name given twice: e"):
        Analysis.model_validate(_block(metrics=[same, same]))
    with pytest.raises(PydanticValidationError, match="name"):
        Analysis.model_validate(_block(metrics=[{**same, "name": "-rm"}]))
    with pytest.raises(PydanticValidationError, match="unknown name 'os'"):
        Analysis.model_validate(_block(metrics=[{**same, "compare": "os < canary"}]))


def test_prometheus_urls_may_have_a_path_prefix():
    assert prometheus_url("https://metrics.example.com/prometheus") == (
        "https://metrics.example.com/prometheus"
    )


def test_an_analysis_needs_a_canary_to_compare_and_errors_name_their_path():
    config: dict[str, Any] = {
        "project": "p",
        "repo": "https://example.com/p.git",
        "environments": {
            "production": {
                "hosts": ["10.0.0.1"],
                "webroot": "/srv/www/p",
                "releases": "/srv/releases/p",
                "strategy": {"analysis": _block()},
            }
        },
    }
    with pytest.raises(ConfigError) as refused:
        parse_project(config)
    assert any("analysis: compares a canary" in e for e in refused.value.errors)
    config["environments"]["production"]["strategy"]["analysis"] = _block(
        metrics=[{"name": "e", "query": "sum(up)", "compare": "canary < 1"}]
    )
    config["environments"]["production"]["strategy"]["canary"] = 1
    with pytest.raises(ConfigError) as refused:
        parse_project(config)
    assert any(
        e.startswith("environments/production/strategy/analysis/metrics/0/query")
        for e in refused.value.errors
    ), refused.value.errors


def test_pull_mode_refuses_an_analysis_it_would_never_run():
    config: dict[str, Any] = {
        "project": "p",
        "repo": "https://example.com/p.git",
        "environments": {
            "production": {
                "hosts": ["10.0.0.1", "10.0.0.2"],
                "webroot": "/srv/www/p",
                "releases": "/srv/releases/p",
                "mode": "pull",
                "strategy": {"canary": 1, "analysis": _block()},
            }
        },
    }
    with pytest.raises(ConfigError) as refused:
        parse_project(config)
    assert any("strategy/analysis: push mode only" in e for e in refused.value.errors)
    config["environments"]["production"]["mode"] = "push"
    parsed = parse_project(config).environments["production"].strategy
    assert parsed is not None and parsed.analysis is not None


def test_an_analysis_refuses_a_canary_held_out_of_the_load_balancer():
    strategy = {
        "canary": 1,
        "pause": "manual",
        "lb_out": "lb-remove {HOST}",
        "lb_in": "lb-add {HOST}",
        "canary_lb": "out_until_continue",
        "analysis": _block(),
    }
    config = {
        "project": "p",
        "repo": "https://example.com/p.git",
        "environments": {
            "production": {
                "hosts": ["10.0.0.1", "10.0.0.2"],
                "webroot": "/srv/www/p",
                "releases": "/srv/releases/p",
                "strategy": strategy,
            }
        },
    }
    with pytest.raises(ConfigError) as refused:
        parse_project(config)
    assert any("analysis: needs canary_lb: in" in e for e in refused.value.errors)
    strategy["canary_lb"] = "in"
    parsed = parse_project(config).environments["production"].strategy
    assert parsed is not None and parsed.analysis is not None
