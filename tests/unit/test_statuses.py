"""The statuses (``domain/statuses.py``): their values are the public contract, the members go
to the database and to JSON as exactly those values, and no module spells a status as a string
literal.

Fast and pure: an in-memory SQLite database, the drivers' own adapters (no server), the
source read as syntax trees."""

from __future__ import annotations

import ast
import itertools
import json
import typing
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from ferryman.domain import statuses as st
from ferryman.domain import tickets
from ferryman.domain.statuses import (
    AnalysisVerdict,
    DeliveryStatus,
    DeployStatus,
    HostStatus,
    PullTaskStatus,
    ReleaseState,
    RolloutState,
    StageStatus,
    TicketStatus,
    WatchStatus,
)
from ferryman.errors import InvalidTransition

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "ferryman"

# --- (1) the values: what the database holds, the API answers and the docs name -------------

# Written out, not derived: changing a value here is changing the public contract.
CONTRACT: dict[type[StrEnum], tuple[str, ...]] = {
    DeployStatus: ("queued", "running", "paused", "success", "failed", "cancelled"),
    TicketStatus: (
        "draft",
        "pending_approval",
        "approved",
        "rejected",
        "queued",
        "running",
        "succeeded",
        "failed",
        "cancelled",
    ),
    HostStatus: (
        "pending",
        "running",
        "success",
        "failed",
        "reverted",
        "unchanged",
        "rolled_back",
        "unreachable",
        "cancelled",
    ),
    StageStatus: ("running", "success", "failed", "lost"),
    PullTaskStatus: (
        "pending",
        "due",
        "running",
        "success",
        "failed",
        "rolled_back",
        "skipped",
        "unreachable",
        "cancelled",
    ),
    DeliveryStatus: ("pending", "sending", "sent", "failed"),
    WatchStatus: ("watching", "passed", "failed", "ended"),
    ReleaseState: ("complete", "removed"),
    RolloutState: ("running", "paused", "done", "aborted", "halted"),
    AnalysisVerdict: ("pass", "fail", "error"),
}


@pytest.mark.parametrize("kind", st.KINDS, ids=lambda k: k.__name__)
def test_every_value_is_the_contract_and_every_member_is_its_value(kind):
    assert tuple(m.value for m in kind) == CONTRACT[kind]
    for member in kind:
        assert member == member.value and str(member) == member.value == f"{member}"
        assert member.name == member.value.upper(), "a member is named after its value"
        assert kind(member.value) is member  # a value read back finds its member


def test_every_kind_is_listed_and_documented():
    assert set(st.KINDS) == set(CONTRACT)
    for kind in st.KINDS:
        assert kind.__doc__ and kind.__doc__ != StrEnum.__doc__, kind.__name__


def test_the_api_declares_the_same_values():
    from ferryman.api import views
    from ferryman.api.routes import analysis

    assert typing.get_args(views.DeployStatus) == CONTRACT[DeployStatus]
    assert typing.get_args(views.TicketStatus) == CONTRACT[TicketStatus]
    watch = views.Watch.model_fields["status"].annotation
    assert typing.get_args(watch) == CONTRACT[WatchStatus]
    verdict = analysis.AnalysisMeasurement.model_fields["verdict"].annotation
    assert typing.get_args(verdict) == CONTRACT[AnalysisVerdict]


def test_the_docs_and_the_cli_name_the_same_values():
    from ferryman.cli import deploys

    assert "Only deploys in this state: " + ", ".join(DeployStatus) + "." in _source(deploys)
    pull = (ROOT / "docs" / "pull-mode.md").read_text()
    reported = ", ".join(f"`{s}`" for s in st.PULL_REPORTED)
    assert f"`status` ({reported} when final)" in pull
    arch = (ROOT / "docs" / "architecture.md").read_text()
    finals = ("success", "reverted", "unchanged")  # a recovered deploy's host rows
    assert ", ".join(f"`{HostStatus(w)}`" for w in finals) in arch
    ops = (ROOT / "docs" / "operations.md").read_text()
    active = ", ".join(st.DEPLOY_ACTIVE[:-1]) + " or " + st.DEPLOY_ACTIVE[-1]
    assert active == "queued, running or paused"
    assert f"| {active} now |" in ops  # ferryman_deploys_active


def _source(module: object) -> str:
    return Path(typing.cast(str, getattr(module, "__file__", ""))).read_text()


# --- the groups and the one mapping ----------------------------------------------------------


def test_a_deploy_is_active_or_finished_never_both():
    assert set(st.DEPLOY_ACTIVE) | set(st.DEPLOY_FINISHED) == set(DeployStatus)
    assert not set(st.DEPLOY_ACTIVE) & set(st.DEPLOY_FINISHED)
    assert st.DEPLOY_ACTIVE == ("queued", "running", "paused")  # the order of the old tuple
    assert st.DEPLOY_FINISHED == ("success", "failed", "cancelled")


def test_db_models_active_statuses_is_the_same_group():
    from ferryman.db import models

    # until db/models.py imports it from domain/statuses: the two must not drift apart
    assert tuple(models.ACTIVE_STATUSES) == st.DEPLOY_ACTIVE


def test_the_deploy_to_ticket_mapping_covers_every_deploy_status():
    assert set(st.DEPLOY_TO_TICKET) == set(DeployStatus)
    assert st.DEPLOY_TO_TICKET[DeployStatus.SUCCESS] is TicketStatus.SUCCEEDED
    assert st.DEPLOY_TO_TICKET[DeployStatus.PAUSED] is TicketStatus.RUNNING
    assert st.ticket_status_for("success") is TicketStatus.SUCCEEDED  # a value read back
    assert st.ticket_status_for("succeeded") is None  # a ticket's word is no deploy status
    assert tickets.FROM_DEPLOY is st.DEPLOY_TO_TICKET  # the name services/queue.py imports
    with pytest.raises(TypeError):
        st.DEPLOY_TO_TICKET["success"] = TicketStatus.FAILED  # type: ignore[index]


def test_the_ticket_groups_follow_the_state_machine():
    assert tuple(TicketStatus) == tickets.STATES
    assert tickets.FINAL == st.TICKET_FINAL
    for state in st.TICKET_FINAL:
        assert tickets.TRANSITIONS[state] == frozenset(), state
    for state in set(TicketStatus) - st.TICKET_FINAL:
        assert tickets.TRANSITIONS[state], f"{state} leads somewhere"
    for state in st.TICKET_OPEN:  # open: cancelled with its project, never queued yet
        assert TicketStatus.CANCELLED in tickets.TRANSITIONS[state]
    assert tickets.PENDING is TicketStatus.PENDING_APPROVAL


def test_the_pull_and_host_groups():
    assert not set(st.PULL_ACTIVE) & set(st.PULL_FINAL)
    assert set(st.PULL_ACTIVE) | set(st.PULL_FINAL) | {PullTaskStatus.PENDING} == set(
        PullTaskStatus
    )
    assert st.PULL_REPORTED == ("success", "failed", "rolled_back", "skipped")
    assert set(st.HOST_FINAL) == set(HostStatus) - {HostStatus.PENDING, HostStatus.RUNNING}
    assert set(st.DELIVERY_WAITING) == {"pending", "sending"}


def test_a_refused_transition_names_the_states_in_words():
    with pytest.raises(InvalidTransition) as refused:
        tickets.check_transition(7, TicketStatus.DRAFT, TicketStatus.QUEUED)
    message = str(refused.value.message)
    assert message == (
        "cannot deploy ticket #7: it is draft (from there it can go to: "
        "approved, cancelled, pending_approval)"
    )
    assert "TicketStatus" not in message


# --- the members keep the stored and sent values ---------------------------------------------


def test_the_database_stores_and_finds_the_values():
    from ferryman.db.models import Deploy, DeployHost, Ticket

    engine = create_engine("sqlite://")
    for model in (Deploy, DeployHost, Ticket):
        model.__table__.create(engine)  # type: ignore[attr-defined]
    stages = [{"name": "prepare", "status": StageStatus.SUCCESS}]
    with Session(engine) as s:
        s.add(Deploy(project_id=1, env="p", config={}, status=DeployStatus.SUCCESS, stages=stages))
        s.add(DeployHost(deploy_id=1, host="h", status=HostStatus.ROLLED_BACK))
        s.add(Ticket(space_id=1, project_id=1, env="p", title="t", status=TicketStatus.SUCCEEDED))
        s.commit()
    with engine.connect() as c:
        raw = c.execute(text("SELECT status, typeof(status), stages FROM deploys")).one()
        assert tuple(raw[:2]) == ("success", "text")
        assert json.loads(raw[2]) == [{"name": "prepare", "status": "success"}]
        assert c.execute(text("SELECT status FROM tickets")).scalar() == "succeeded"
        assert c.execute(text("SELECT status FROM deploy_hosts")).scalar() == "rolled_back"
        # a member in a query finds what a plain string wrote, and the other way round
        c.execute(text("UPDATE deploys SET status = 'paused'"))
        c.commit()
        assert c.scalar(select(Deploy.id).where(Deploy.status.in_(st.DEPLOY_ACTIVE))) == 1
        assert c.scalar(select(Deploy.id).where(Deploy.status == DeployStatus.PAUSED)) == 1
    with Session(engine) as s:
        deploy = s.scalars(select(Deploy)).one()
        assert deploy.status == DeployStatus.PAUSED and type(deploy.status) is str
        deploy.status = DeployStatus.SUCCESS  # leaving the active states: the validator
        s.commit()
        assert deploy.active_key is None
    engine.dispose()


def test_postgresql_and_mariadb_drivers_send_the_value_not_the_name():
    """psycopg dumps a plain ``Enum`` by its *name*; a ``StrEnum`` is a ``str`` first (its
    MRO), so it goes as the value. PyMySQL escapes it as the string it is."""
    import pymysql.converters  # type: ignore[import-untyped]
    from psycopg.adapt import PyFormat, Transformer

    tx = Transformer()
    for member in (DeployStatus.SUCCESS, TicketStatus.PENDING_APPROVAL, HostStatus.ROLLED_BACK):
        for fmt in (PyFormat.AUTO, PyFormat.TEXT, PyFormat.BINARY):
            assert bytes(tx.get_dumper(member, fmt).dump(member) or b"") == member.value.encode()
        assert pymysql.converters.escape_item(member, "utf8mb4") == f"'{member.value}'"


def test_json_and_the_api_models_send_the_values():
    from fastapi.encoders import jsonable_encoder

    from ferryman.api import views

    doc = {"status": DeployStatus.SUCCESS, "ticket": TicketStatus.SUCCEEDED}
    assert json.dumps(doc) == '{"status": "success", "ticket": "succeeded"}'
    assert jsonable_encoder(doc) == {"status": "success", "ticket": "succeeded"}
    page = views.LogPage.model_validate(
        {"deploy_id": 1, "status": DeployStatus.PAUSED, "lines": [], "next": 0, "more": False}
    )
    assert json.loads(page.model_dump_json())["status"] == "paused"
    assert type(page.model_dump()["status"]) is str


# --- (2) no status literal anywhere in the source --------------------------------------------

# Every value of every kind: a string literal that is one of these, assigned to or compared
# with a status, is a status spelled out.
VOCABULARY = frozenset(m.value for kind in st.KINDS for m in kind)
FIELDS = frozenset({"status", "state"})

# Literals that are no status of ours: (file, line's text) → why.
NOT_OURS: dict[tuple[str, str], str] = {
    ("domain/analysis.py", 'if answer.get("status") != "success":'): "Prometheus's answer",
}

# Never scanned: the migrations are history (each keeps the literals it ran with), and the
# statuses module is where the values are written.
NEVER_SCANNED = ("db/migrations/", "domain/statuses.py")


def _is_status(node: ast.expr) -> bool:
    """``x.status``, ``x["status"]``, ``x.get("status")`` (and ``state``), or a name
    ``status``."""
    if isinstance(node, ast.Attribute):
        return node.attr in FIELDS
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value in FIELDS
    if isinstance(node, ast.Name):
        return node.id == "status"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        first = node.args[0] if node.args else None
        return node.func.attr == "get" and isinstance(first, ast.Constant) and first.value in FIELDS
    return False


def _literals(node: ast.expr) -> Iterator[str]:
    """The status values spelled out in ``node``: itself, a tuple/list/set of them, either
    side of a conditional expression."""
    if isinstance(node, ast.Constant) and node.value in VOCABULARY:
        yield node.value
    elif isinstance(node, ast.Tuple | ast.List | ast.Set):
        for element in node.elts:
            yield from _literals(element)
    elif isinstance(node, ast.IfExp):
        yield from _literals(node.body)
        yield from _literals(node.orelse)
    elif isinstance(node, ast.Starred):
        yield from _literals(node.value)


_STATUS = ast.Name(id="status")


def _pairs(node: ast.AST) -> Iterator[tuple[ast.expr, ast.expr]]:
    """(what holds a status, the value put in it or compared with it) in ``node``."""
    if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                yield from zip(target.elts, node.value.elts, strict=False)
            elif node.value is not None:
                yield target, node.value
    elif isinstance(node, ast.Compare):
        sides = [node.left, *node.comparators]
        for left, right in itertools.pairwise(sides):
            yield left, right
            yield right, left
    elif isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in ("in_", "not_in"):
            yield from ((func.value, arg) for arg in node.args)  # Deploy.status.in_((…))
        # Model(status=…), .values(status=…), DeployFilter(status=…), f(…, status=…)
        yield from ((_STATUS, kw.value) for kw in node.keywords if kw.arg in FIELDS)
    elif isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values, strict=True):
            if isinstance(key, ast.Constant) and key.value in FIELDS:
                yield _STATUS, value


def status_literals(source: str) -> list[tuple[int, str]]:
    """(line, literal) of every status value spelled out as a string and assigned to or
    compared with a status."""
    found = []
    for node in ast.walk(ast.parse(source)):
        for holder, value in _pairs(node):
            if _is_status(holder):
                found += [(getattr(node, "lineno", 0), lit) for lit in _literals(value)]
    return sorted(found)


def _scan() -> dict[str, list[tuple[int, str]]]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        name = path.relative_to(SRC).as_posix()
        if name.startswith(NEVER_SCANNED):
            continue
        source = path.read_text()
        lines = source.splitlines()
        found = [
            (line, lit)
            for line, lit in status_literals(source)
            if (name, lines[line - 1].strip()) not in NOT_OURS
        ]
        if found:
            out[name] = found
    return out


def test_the_scanner_sees_every_way_a_status_is_spelled_out():
    source = """
deploy.status = "success"
task.status, task.finished_at = "cancelled", now
if deploy.status == "queued": pass
if "failed" != row.status: pass
if deploy["status"] in ("running", "paused"): pass
ok = data.get("status") not in ["failed"]
status = "failed" if bad else "success"
query = select(Deploy).where(Deploy.status.in_(("queued", "running")))
update(AgentTask).values(status="unreachable")
Ticket(status="draft", title="draft")
row = {"host": "h", "status": "pending"}
state.state = "paused"
release.state == "complete"
"""
    assert status_literals(source) == [
        (2, "success"),
        (3, "cancelled"),
        (4, "queued"),
        (5, "failed"),
        (6, "paused"),
        (6, "running"),
        (7, "failed"),
        (8, "failed"),
        (8, "success"),
        (9, "queued"),
        (9, "running"),
        (10, "unreachable"),
        (11, "draft"),  # the title's "draft" is no status
        (12, "pending"),
        (13, "paused"),
        (14, "complete"),
    ]


def test_the_scanner_leaves_members_and_other_words_alone():
    source = """
deploy.status = DeployStatus.SUCCESS
if deploy.status in DEPLOY_ACTIVE: pass
title = "failed"
event = {"cancelled": "cancelled"}.get(outcome)
kind == "deploy"
health = {"status": "ok"}
code = response.status == 200
status: str = "status"
"""
    assert status_literals(source) == []


def test_no_module_spells_a_status_as_a_string_literal():
    found = _scan()
    assert not found, (
        f"status values spelled as strings (use the members of ferryman.domain.statuses): {found}"
    )


def test_the_exemptions_still_exist():
    """An exemption whose line is gone (moved, fixed) leaves the list."""
    for name, line in NOT_OURS:
        assert line in (SRC / name).read_text(), (name, line)
