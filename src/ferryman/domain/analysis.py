"""Metric canary analysis, as pure rules: the ``compare`` expressions, how ``{HOSTS_RE}`` is
filled into a PromQL query, how a Prometheus answer becomes one number, and when an analysis
has failed.

``compare`` is a tiny language, parsed here and never handed to ``eval``::

    comparison := sum OP sum                 OP: < <= > >= == !=
    sum        := term (("+" | "-") term)*
    term       := factor (("*" | "/") factor)*
    factor     := NUMBER | "canary" | "baseline" | "(" sum ")" | "-" factor

``{HOSTS_RE}`` may only stand inside a quoted PromQL string (a label matcher's value, as in
``instance=~"{HOSTS_RE}"``): it is filled with a regular expression matching exactly the
given hosts (each address or server name, with or without a ``:port``), escaped for RE2 and
then for the kind of quotes around it, so no host name can end the string.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ferryman.errors import ValidationError
from ferryman.said import said

HOSTS_RE = "{HOSTS_RE}"
MAX_QUERY = 2000  # characters of a query as written
MAX_COMPARE = 200
MAX_TOKENS = 64
MAX_DEPTH = 8  # nested parentheses or signs in a compare
MAX_VALUE_CHARS = 64  # a sample's value as Prometheus writes it ("0.25", "NaN", "+Inf")
PASS, FAIL, ERROR = "pass", "fail", "error"


class Unanswered(Exception):
    """A question the analysis could not answer (no data, a bad answer, a division by zero):
    the interval is inconclusive, and the analysis fails safe."""


# --- compare ------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_]+)"
    r"|(?P<op><=|>=|==|!=|<|>|[-+*/()]))"
)
_COMPARISONS = ("<=", ">=", "==", "!=", "<", ">")
_NAMES = ("canary", "baseline")

Node = float | str | tuple[Any, ...]  # a number, a name, or (operator, operands…)


@dataclass(frozen=True)
class Compare:
    """A parsed ``compare``: ``left OP right``."""

    text: str
    op: str
    left: Node
    right: Node

    @property
    def uses_baseline(self) -> bool:
        return "baseline" in _names(self.left) | _names(self.right)

    def holds(self, canary: float, baseline: float | None) -> bool:
        """Whether the comparison holds for these values; ``Unanswered`` when it cannot be
        decided (a division by zero, a baseline it needs and does not have, NaN)."""
        values = {"canary": canary, "baseline": baseline}
        left, right = _value(self.left, values), _value(self.right, values)
        if math.isnan(left) or math.isnan(right):
            raise Unanswered(f"{self.text}: not a number ({left} {self.op} {right})")
        return {
            "<=": left <= right,
            ">=": left >= right,
            "==": left == right,
            "!=": left != right,
            "<": left < right,
            ">": left > right,
        }[self.op]


def _names(node: Node) -> set[str]:
    if isinstance(node, str):
        return {node}
    if isinstance(node, tuple):
        return set().union(*(_names(n) for n in node[1:]))
    return set()


def _value(node: Node, values: Mapping[str, float | None]) -> float:
    if isinstance(node, float):
        return node
    if isinstance(node, str):
        found = values[node]
        if found is None:
            raise Unanswered(f"no {node} value to compare with")
        return found
    op, *args = node
    if op == "neg":
        return -_value(args[0], values)
    a, b = _value(args[0], values), _value(args[1], values)
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if b == 0:
        raise Unanswered("the compare divides by zero")
    return a / b


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        found = _TOKEN.match(text, pos)
        if not found:
            raise ValidationError(
                said("compare: unexpected %(text)s", text=repr(text[pos:].strip()[:20]))
            )
        kind = found.lastgroup or ""
        out.append((kind, found.group(kind)))
        pos = found.end()
        if len(out) > MAX_TOKENS:
            raise ValidationError(
                said("compare: too long (at most %(most)s terms and operators)", most=MAX_TOKENS)
            )
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise ValidationError(said("compare: ends too early"))
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def sum(self) -> Node:
        node = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()[1]
            node = (op, node, self.term())
        return node

    def term(self) -> Node:
        node = self.factor()
        while self.peek() in ("*", "/"):
            op = self.take()[1]
            node = (op, node, self.factor())
        return node

    def factor(self) -> Node:
        kind, text = self.take()
        if kind == "num":
            number = float(text)
            if not math.isfinite(number):
                raise ValidationError(
                    said("compare: not a finite number: %(text)s", text=repr(text[:20]))
                )
            return number
        if kind == "name":
            if text not in _NAMES:
                raise ValidationError(
                    said(
                        "compare: unknown name %(name)s (only canary and baseline)",
                        name=repr(text[:20]),
                    )
                )
            return text
        if text in ("(", "-"):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ValidationError(
                    said("compare: nested more than %(most)s deep", most=MAX_DEPTH)
                )
            if text == "-":
                node: Node = ("neg", self.factor())
            else:
                node = self.sum()
                if self.peek() != ")":
                    raise ValidationError(said("compare: a ( is not closed"))
                self.take()
            self.depth -= 1
            return node
        raise ValidationError(said("compare: unexpected %(text)s", text=repr(text)))


def parse_compare(text: str) -> Compare:
    """``canary <= baseline * 1.5 + 0.001`` → a :class:`Compare`, or ``ValidationError``."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationError(said("compare: empty (like: canary <= baseline * 1.2)"))
    if len(text) > MAX_COMPARE:
        raise ValidationError(said("compare: longer than %(most)s characters", most=MAX_COMPARE))
    tokens = _tokens(text)
    ops = [i for i, (kind, value) in enumerate(tokens) if value in _COMPARISONS]
    if len(ops) != 1:
        raise ValidationError(
            said(
                "compare: exactly one comparison (<, <=, >, >=, ==, !=), "
                "like: canary <= baseline * 1.2"
            )
        )
    at = ops[0]
    sides = []
    for part in (tokens[:at], tokens[at + 1 :]):
        parser = _Parser(part)
        node = parser.sum()
        if parser.pos != len(part):
            raise ValidationError(
                said("compare: unexpected %(text)s", text=repr(part[parser.pos][1]))
            )
        sides.append(node)
    found = Compare(text.strip(), tokens[at][1], sides[0], sides[1])
    if "canary" not in _names(found.left) | _names(found.right):
        raise ValidationError(said("compare: it must name canary (what is judged)"))
    return found


# --- {HOSTS_RE} ---------------------------------------------------------------------------

_RE2_SPECIAL = set("\\.+*?()|[]{}^$-")


def _re2_escape(text: str) -> str:
    return "".join("\\" + c if c in _RE2_SPECIAL else c for c in text)


def hosts_regex(names: Iterable[str]) -> str:
    """A regular expression (RE2, as PromQL matches: anchored) matching exactly ``names``,
    each with or without a ``:port``."""
    unique = sorted({n for n in names if n})
    if not unique:
        raise ValidationError(said("no hosts to fill {HOSTS_RE} with"))
    return "(?:" + "|".join(_re2_escape(n) for n in unique) + ")(?::[0-9]+)?"


def _quoted_spans(query: str) -> list[tuple[int, int, str]]:
    """(start, end, quote) of every string literal in a PromQL query (start after the
    opening quote, end at the closing one); ``ValidationError`` for one left open."""
    spans = []
    pos = 0
    while pos < len(query):
        char = query[pos]
        if char in "\"'`":
            end = pos + 1
            while end < len(query) and query[end] != char:
                end += 2 if query[end] == "\\" and char != "`" else 1
            if end >= len(query):
                raise ValidationError(
                    said("query: a string opened with %(quote)s is not closed", quote=char)
                )
            spans.append((pos + 1, end, char))
            pos = end + 1
        elif char == "#":  # a comment runs to the end of its line
            newline = query.find("\n", pos)
            pos = len(query) if newline < 0 else newline
        else:
            pos += 1
    return spans


def check_query(query: str) -> str:
    """A metric's query as written: bounded, no control characters but newlines and tabs,
    ``{HOSTS_RE}`` at least once and only inside quotes."""
    if not isinstance(query, str) or not query.strip():
        raise ValidationError(said("query: empty"))
    if len(query) > MAX_QUERY:
        raise ValidationError(said("query: longer than %(most)s characters", most=MAX_QUERY))
    if any(ord(c) < 32 and c not in "\n\t" for c in query) or "\x7f" in query:
        raise ValidationError(said("query: control characters"))
    spans = _quoted_spans(query)
    found = [m.start() for m in re.finditer(re.escape(HOSTS_RE), query)]
    if not found:
        raise ValidationError(
            said('query: it must select hosts with {HOSTS_RE}, like instance=~"{HOSTS_RE}"')
        )
    for at in found:
        if not any(start <= at and at + len(HOSTS_RE) <= end for start, end, _ in spans):
            raise ValidationError(
                said('query: {HOSTS_RE} goes inside quotes, like instance=~"{HOSTS_RE}"')
            )
    return query


def fill(query: str, regex: str) -> str:
    """The query with every ``{HOSTS_RE}`` replaced by ``regex``, escaped for the quotes
    around it (backslashes doubled in "…" and '…'; raw in `…`)."""
    check_query(query)
    out, pos = [], 0
    for start, end, quote in _quoted_spans(query):
        inner = query[start:end]
        if HOSTS_RE not in inner:
            continue
        if quote == "`":
            if "`" in regex:
                raise ValidationError(said("a host name cannot stand in a `…` string"))
            value = regex
        else:
            value = regex.replace("\\", "\\\\").replace(quote, "\\" + quote)
        out.append(query[pos:start])
        out.append(inner.replace(HOSTS_RE, value))
        pos = end
    out.append(query[pos:])
    return "".join(out)


# --- Prometheus answers -------------------------------------------------------------------


def _number(raw: Any) -> float:
    if not isinstance(raw, str) or len(raw) > MAX_VALUE_CHARS:
        raise Unanswered("a sample value that is not a number")
    try:
        value = float(raw)
    except ValueError:
        raise Unanswered(f"a sample value that is not a number: {raw[:20]!r}") from None
    if math.isnan(value):
        raise Unanswered("no data (the query's value is NaN)")
    return value


def _sample(pair: Any) -> float:
    if not isinstance(pair, list) or len(pair) != 2:
        raise Unanswered("a sample that is not [time, value]")
    return _number(pair[1])


def value_of(answer: Any) -> float:
    """The one number a ``/api/v1/query`` answer holds: a scalar, or a vector of exactly
    one sample. ``Unanswered`` for an error, no data, several series or anything else."""
    if not isinstance(answer, dict):
        raise Unanswered("the answer is not a JSON object")
    if answer.get("status") != "success":
        error = answer.get("error")
        why = error[:200] if isinstance(error, str) else "no reason given"
        raise Unanswered(f"Prometheus refused the query: {why}")
    data = answer.get("data")
    if not isinstance(data, dict):
        raise Unanswered("the answer has no data")
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "scalar":
        return _sample(result)
    if kind != "vector":
        raise Unanswered(f"the query gives a {str(kind)[:20]}, not one number")
    if not isinstance(result, list):
        raise Unanswered("the answer's result is not a list")
    if not result:
        raise Unanswered("no data (the query matches no series)")
    if len(result) > 1:
        raise Unanswered(f"the query gives {len(result)} series; aggregate them (sum, max…)")
    series = result[0]
    if not isinstance(series, dict):
        raise Unanswered("a series that is not an object")
    return _sample(series.get("value"))


# --- verdicts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """One metric in one interval: its values, verdict (pass, fail, error) and why."""

    interval: int
    metric: str
    canary: float | None
    baseline: float | None
    verdict: str
    detail: str = ""

    def shown(self) -> str:
        def num(value: float | None) -> str:
            return "-" if value is None else f"{value:.6g}"

        text = f"{self.metric} canary={num(self.canary)} baseline={num(self.baseline)} "
        return text + self.verdict + (f" ({self.detail})" if self.detail else "")


def judge(
    interval: int, metric: str, compare: Compare, canary: float, baseline: float | None
) -> Measurement:
    """One metric's verdict for one interval."""
    try:
        ok = compare.holds(canary, baseline)
    except Unanswered as exc:
        return Measurement(interval, metric, canary, baseline, ERROR, str(exc))
    return Measurement(
        interval, metric, canary, baseline, PASS if ok else FAIL, "" if ok else compare.text
    )


def failures(measurements: Sequence[Measurement]) -> dict[str, int]:
    """Failed intervals per metric."""
    out: dict[str, int] = {}
    for m in measurements:
        if m.verdict == FAIL:
            out[m.metric] = out.get(m.metric, 0) + 1
    return out


def failed_metric(measurements: Sequence[Measurement], failure_limit: int) -> str | None:
    """The first metric that failed in more than ``failure_limit`` intervals, if any."""
    for metric, count in failures(measurements).items():
        if count > failure_limit:
            return metric
    return None


def intervals(duration: float, interval: float) -> int:
    """How many measurements an analysis takes: one at the end of each interval."""
    return max(1, math.floor(duration / interval + 1e-9))
