"""Review, session 11: a release request (``POST``/``PUT /api/v1/project``) writes the
settings it asks for, its ticket and itself in one transaction, and refuses (409) when the
project was applied by someone else since the request was checked — "so nobody's ``ferryman
apply`` is silently overwritten" (docs/pull-mode.md). The check read the project's row
without locking it: an apply that committed after that read and before the request's own
write was overwritten all the same on PostgreSQL and MariaDB, where a transaction reads what
was committed when it reads and then writes over a row another transaction changed since.

The interleaving is made exact, not hoped for: the request's write calls ``apply_in`` (the
same write ``ferryman apply`` makes); right then, the other master's apply runs in its own
transaction, and the request goes on once that apply has committed or waits for a lock the
request holds."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ferryman.config.project import parse_project
from ferryman.db.models import Deploy, Ticket
from ferryman.errors import Conflict, FerrymanError
from ferryman.services import approval, projects, release_requests, tickets
from ferryman.services.audit import SYSTEM
from ferryman.testing import databases
from tests.api.world import World, build_world

OTHER_HOOK = "echo the other master's apply"
LOCK_WAITS = {
    "postgresql": "SELECT count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND wait_event_type = 'Lock'",
    # MariaDB does not list every row-lock wait as LOCK WAIT (an UPDATE or a locking read by
    # primary key can wait as RUNNING, state "Updating" or "Statistics"): a statement of this
    # database running on another connection for a second or more waits too (nothing else in
    # these tests takes that long)
    "mariadb": "SELECT count(*) FROM information_schema.processlist p "
    "LEFT JOIN information_schema.innodb_trx t ON p.id = t.trx_mysql_thread_id "
    "WHERE p.db = DATABASE() AND p.id <> CONNECTION_ID() "
    "AND (t.trx_state = 'LOCK WAIT' OR (p.command = 'Query' AND p.time >= 1))",
}  # this test's database only: the servers are shared


@pytest.fixture(scope="module", params=["postgresql", "mariadb"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    backend = str(request.param)
    reason = databases.unavailable(backend)
    if reason:
        if os.environ.get("FERRYMAN_REQUIRE_DATABASES", "") not in ("", "0", "no"):
            pytest.fail(reason)
        pytest.skip(reason)
    base: Path = tmp_path_factory.mktemp(f"request-race-{backend}")
    url = databases.create(backend, base)
    w = build_world(base, url)
    repo = Path(w.repo_url.removeprefix("file://"))
    (repo / "index.html").write_text("v2\n")
    for args in (["commit", "-qam", "second"], ["tag", "v2"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    try:
        yield w
    finally:
        w.db.dispose()
        databases.drop(url)


def _waits_for_a_lock(w: World) -> bool:
    backend = databases.backend_of(w.db.url)
    with w.db.engine.connect() as conn:
        return int(conn.execute(text(LOCK_WAITS[backend])).scalar() or 0) > 0


def _racing_apply(
    w: World, monkeypatch: pytest.MonkeyPatch, theirs: dict[str, Any]
) -> tuple[list[Any], threading.Event]:
    """Make the request's own ``apply_in`` start the other master's apply first, in another
    transaction; returns what that apply ended with (once it has)."""
    real = projects.apply_in
    outcome: list[Any] = []
    started: list[bool] = []
    done = threading.Event()

    def other_apply() -> None:
        try:
            outcome.append(projects.apply_project(w.db, SYSTEM, parse_project(theirs)))
        except Exception as exc:  # recorded, asserted on by the test
            outcome.append(exc)
        finally:
            done.set()

    def racing(s: Any, db: Any, actor: Any, config: Any, dry_run: bool = False) -> Any:
        if not dry_run and actor is not SYSTEM and not started:
            started.append(True)
            threading.Thread(target=other_apply, daemon=True).start()
            deadline = time.monotonic() + 60  # a bound on a wait, not a timed assertion
            while not done.is_set() and not _waits_for_a_lock(w):
                assert time.monotonic() < deadline, "the other apply neither ended nor waited"
                time.sleep(0.05)
        return real(s, db, actor, config, dry_run=dry_run)

    monkeypatch.setattr(projects, "apply_in", racing)
    return outcome, done


def _production(w: World, name: str) -> dict[str, Any]:
    found, _ = projects.get_project(w.db, SYSTEM, f"acme:{name}")
    return dict(found.config["environments"]["production"])


def test_an_apply_committed_while_a_release_request_writes_is_never_silently_overwritten(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world
    name = projects.get_project(w.db, SYSTEM, int(w.new_project()))[0].name
    theirs = w.config(name)
    theirs["environments"]["production"]["tasks"] = {"pre_release": OTHER_HOOK}
    outcome, done = _racing_apply(w, monkeypatch, theirs)
    try:
        made: Any = asyncio.run(
            release_requests.create(
                w.db,
                w.settings,
                w.actors["master"],
                f"acme:{name}",
                "production",
                "v1",
                {"build": "make build"},
            )
        )
    except Conflict as exc:  # refused: the other apply was seen — the documented answer
        made = exc
    assert done.wait(60), "the other apply never ended"
    assert not isinstance(outcome[0], Exception), outcome[0]
    production = _production(w, name)
    # the other master's apply holds, whatever became of the request
    assert production.get("tasks", {}).get("pre_release") == OTHER_HOOK, (made, production)


def test_an_apply_committed_while_a_put_changes_a_request_is_never_silently_overwritten(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world
    name = projects.get_project(w.db, SYSTEM, int(w.new_project()))[0].name
    master = w.actors["master"]
    made = asyncio.run(
        release_requests.create(
            w.db, w.settings, master, f"acme:{name}", "production", "v1", {"build": "make"}
        )
    )
    theirs = projects.get_project(w.db, SYSTEM, f"acme:{name}")[0].config
    theirs = {**theirs, "environments": dict(theirs["environments"])}
    theirs["environments"]["production"] = {
        **theirs["environments"]["production"],
        "tasks": {"post_deploy": "make", "pre_release": OTHER_HOOK},
    }
    outcome, done = _racing_apply(w, monkeypatch, theirs)
    try:
        changed: Any = asyncio.run(
            release_requests.update(
                w.db, w.settings, master, int(made["id"]), {"build": "make all"}
            )
        )
    except Conflict as exc:
        changed = exc
    assert done.wait(60), "the other apply never ended"
    assert not isinstance(outcome[0], Exception), outcome[0]
    production = _production(w, name)
    assert production.get("tasks", {}).get("pre_release") == OTHER_HOOK, (changed, production)


def test_a_deploy_queued_while_a_put_changes_the_request_is_the_version_the_ticket_shows(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A developer changes the version of an approved request while a master deploys it:
    either the deploy goes first (and the PUT is refused: the request is queued) or the PUT
    does (and the deploy is refused: the request is back in review). Before, both went
    through: a deploy of v1 ran under a ticket that read v2, pending approval — and the
    ticket would report v2 deployed when it finished."""
    w = world
    name = projects.get_project(w.db, SYSTEM, int(w.new_project()))[0].name
    made = asyncio.run(
        release_requests.create(
            w.db, w.settings, w.actors["developer"], f"acme:{name}", "production", "v1", {}
        )
    )
    ticket_id = int(made["id"])
    assert made["status"] == "pending_approval"
    tickets.approve_ticket(w.db, w.actors["master"], ticket_id)
    real = approval.approving_environments  # asked by the PUT once it holds the ticket
    outcome: list[Any] = []
    done = threading.Event()

    def master_deploys() -> None:
        try:
            outcome.append(tickets.deploy_ticket(w.db, w.actors["master"], ticket_id))
        except Exception as exc:  # recorded, asserted on below
            outcome.append(exc)
        finally:
            done.set()

    def racing(*args: Any) -> Any:
        if not outcome and not done.is_set() and not racing_started:
            racing_started.append(True)
            threading.Thread(target=master_deploys, daemon=True).start()
            deadline = time.monotonic() + 60  # a bound on a wait, not a timed assertion
            while not done.is_set() and not _waits_for_a_lock(w):
                assert time.monotonic() < deadline, "the deploy neither ended nor waited"
                time.sleep(0.05)
        return real(*args)

    racing_started: list[bool] = []
    monkeypatch.setattr(approval, "approving_environments", racing)
    try:
        changed: Any = asyncio.run(
            release_requests.update(
                w.db, w.settings, w.actors["developer"], ticket_id, {}, version="v2"
            )
        )
    except Conflict as exc:
        changed = exc
    assert done.wait(60), "the deploy never ended"
    with w.db.read() as s:
        ticket = s.get(Ticket, ticket_id)
        assert ticket is not None
        deploy = s.get(Deploy, ticket.deploy_id) if ticket.deploy_id is not None else None
        if deploy is not None:  # the deploy went first: the ticket shows what it deploys
            assert ticket.status == "queued", (changed, outcome)
            assert (ticket.ref, ticket.commit) == (deploy.ref, deploy.commit), (changed, outcome)
            assert isinstance(changed, Conflict)
        else:  # the PUT went first: v2 waits for a new approval, nothing was queued
            assert ticket.status == "pending_approval" and ticket.ref == "v2"
            # refused as a ticket no longer approved — not a deadlock the database broke
            assert isinstance(outcome[0], FerrymanError), outcome
