"""Issue 15, attacked as an attacker would: credentials that outlive a password change,
guessing passwords in parallel and from behind a spoofed proxy header, a console that keeps
streaming to a viewer who lost access, and the smaller holes (rollback targets, a YAML nesting
bomb, NaN durations, the database file's mode, artifact paths, the user list). Every test
failed on the code before the fix."""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from starlette.websockets import WebSocketDisconnect

from ferryman.app import create_app
from ferryman.bootstrap import attach_key
from ferryman.db.models import LoginFailure, Ticket
from ferryman.db.session import Database
from ferryman.domain.rollout import duration
from ferryman.errors import AuthenticationFailed, RateLimited, ValidationError
from ferryman.secretbox import SecretBox, new_key
from ferryman.services import deploy_records, spaces, tickets, users
from ferryman.services.audit import SYSTEM
from tests.api.world import PASSWORD, SPACE, World, build_world, fresh
from tests.helpers import running_server

P = "/api/v1"
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(tmp_path)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(world.settings, world.db, embedded_worker=False)) as c:
        yield c


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _session(client: TestClient, username: str, password: str = PASSWORD) -> tuple[str, str]:
    """(cookie secret, CSRF token) of a new browser session."""
    r = client.post(f"{P}/auth/session", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return r.cookies["ferryman_session"], r.json()["csrf_token"]


def _me(client: TestClient, *, token: str = "", cookie: str = "") -> int:
    client.cookies.clear()
    if cookie:
        client.cookies.set("ferryman_session", cookie)
    r = client.get(f"{P}/me", headers=_bearer(token) if token else {})
    client.cookies.clear()
    status: int = r.status_code
    return status


def _user(world: World, role: str = "developer", space: str = SPACE) -> str:
    name = fresh("u")
    users.create_user(world.db, name, PASSWORD)
    spaces.set_member(world.db, SYSTEM, space, name, role)
    return name


# --- 1. a password change or reset ends every other credential -------------------------------


def test_a_password_change_revokes_every_other_token_and_session_of_that_user(world, client):
    name = _user(world)
    cli = users.login(world.db, name, PASSWORD, "laptop")
    stolen = users.login(world.db, name, PASSWORD, "stolen")
    browser, _ = _session(client, name)
    r = client.post(
        f"{P}/me/password",
        json={"old_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=_bearer(cli),
    )
    assert r.status_code == 204
    assert _me(client, token=cli) == 200  # the credential that made the change goes on
    assert _me(client, token=stolen) == 401
    assert _me(client, cookie=browser) == 401


def test_a_password_change_in_the_browser_keeps_only_that_session_under_a_new_cookie(world, client):
    name = _user(world)
    token = users.login(world.db, name, PASSWORD)
    other_browser, _ = _session(client, name)
    mine, csrf = _session(client, name)
    client.cookies.set("ferryman_session", mine)
    r = client.post(
        "/account/password",
        data={"csrf": csrf, "old": PASSWORD, "new": NEW_PASSWORD, "again": NEW_PASSWORD},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    renewed = r.cookies["ferryman_session"]
    assert renewed != mine
    assert _me(client, cookie=renewed) == 200
    assert _me(client, cookie=mine) == 401  # a copy of the old cookie is worth nothing
    assert _me(client, cookie=other_browser) == 401
    assert _me(client, token=token) == 401


def test_a_password_reset_by_a_superuser_revokes_every_token_and_session_of_that_user(
    world, client
):
    name = _user(world)
    token = users.login(world.db, name, PASSWORD)
    browser, _ = _session(client, name)
    r = client.patch(
        f"{P}/users/{name}",
        json={"password": NEW_PASSWORD},
        headers=_bearer(world.tokens["super"]),
    )
    assert r.status_code == 200, r.text
    assert _me(client, token=token) == 401
    assert _me(client, cookie=browser) == 401
    assert _me(client, token=world.tokens["super"]) == 200
    assert users.login(world.db, name, NEW_PASSWORD)


# --- 2. sign-in limits -----------------------------------------------------------------------


@pytest.fixture
def any_db(db_url: str) -> Iterator[Database]:
    """A migrated database on each backend (SQLite, PostgreSQL, MariaDB)."""
    database = Database(db_url)
    database.upgrade()
    attach_key(database, SecretBox(new_key()))
    yield database
    database.dispose()


class _CountingHasher:
    """The argon2 hasher, counting how many passwords it was asked to evaluate."""

    def __init__(self, real: Any) -> None:
        self.real, self.evaluations, self.lock = real, 0, threading.Lock()

    def verify(self, hashed: str, password: str) -> bool:
        with self.lock:
            self.evaluations += 1
        return bool(self.real.verify(hashed, password))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_sixty_parallel_wrong_guesses_get_no_more_evaluations_than_the_limit(any_db, monkeypatch):
    users.create_user(any_db, "victim", PASSWORD)
    counting = _CountingHasher(users._hasher)
    monkeypatch.setattr(users, "_hasher", counting)
    start = threading.Barrier(60)
    outcomes: list[str] = []

    def guess(i: int) -> None:
        start.wait()
        try:
            users.login(any_db, "victim", f"guess number {i}", ip="203.0.113.7")
            outcomes.append("token")
        except AuthenticationFailed:
            outcomes.append("401")
        except RateLimited as exc:
            assert exc.details["retry_after"] >= 1
            outcomes.append("429")

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(outcomes) == 60 and "token" not in outcomes
    # the free attempts, and at most the one or two a 1-2 s delay lets through meanwhile
    assert counting.evaluations == outcomes.count("401")
    assert counting.evaluations <= users.FREE_PER_USER_AND_IP + 2, counting.evaluations
    assert outcomes.count("429") >= 60 - users.FREE_PER_USER_AND_IP - 2


def _age_attempts(db: Database, seconds: float) -> None:
    """As if ``seconds`` had passed since every recorded attempt."""
    with db.transaction() as s:
        for row in s.scalars(select(LoginFailure)):
            row.ts = row.ts - timedelta(seconds=seconds)


def test_past_the_free_attempts_each_further_guess_waits_twice_as_long(world):
    db, ip = world.db, "198.51.100.4"
    for i in range(users.FREE_PER_USER_AND_IP):
        with pytest.raises(AuthenticationFailed):
            users.login(db, "reporter-user", f"wrong {i}", ip=ip)
    waits = []
    for _ in range(4):
        with pytest.raises(RateLimited) as refused:
            users.login(db, "reporter-user", PASSWORD, ip=ip)  # even the right one waits
        waits.append(refused.value.details["retry_after"])
        _age_attempts(db, waits[-1])
        with pytest.raises(AuthenticationFailed):
            users.login(db, "reporter-user", "still wrong", ip=ip)
    assert waits == [1, 2, 4, 8]
    # the right password, from another address, is not held up by this one's guesses
    assert users.login(db, "reporter-user", PASSWORD, ip="198.51.100.5")


def test_failures_from_one_address_do_not_lock_other_users_out_of_it(world, client):
    """Thirty wrong guesses over thirty user names from an office's one address used to lock
    everyone there out for 15 minutes."""
    for i in range(30):
        r = client.post(f"{P}/auth/login", json={"username": f"nobody{i}", "password": "password1"})
        assert r.status_code == 401
    for _ in range(3):
        r = client.post(f"{P}/auth/login", json={"username": "owner-user", "password": "nope"})
        assert r.status_code == 401
    r = client.post(f"{P}/auth/login", json={"username": "developer-user", "password": PASSWORD})
    assert r.status_code == 200, r.text


def test_a_refused_sign_in_says_when_to_come_back(world, client):
    started = time.monotonic()
    with world.db.transaction() as s:  # many failures just now: a long wait
        s.add_all(
            LoginFailure(username="master-user", ip="testclient")
            for _ in range(users.FREE_PER_USER_AND_IP + 8)
        )
    r = client.post(f"{P}/auth/login", json={"username": "master-user", "password": PASSWORD})
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    # 2**8 s from the failures, less the time this test took (a loaded machine is slow)
    assert int(r.headers["Retry-After"]) >= 2**8 - 2 - (time.monotonic() - started)
    page = client.post("/login", data={"username": "master-user", "password": PASSWORD})
    assert page.status_code == 429
    assert int(page.headers["Retry-After"]) >= 2**8 - 2 - (time.monotonic() - started)


def _spoofed_guesses(url: str, username: str, count: int) -> list[int]:
    """Wrong guesses, each claiming another client address in ``X-Forwarded-For``."""
    codes = []
    for i in range(count):
        r = httpx.post(
            f"{url}{P}/auth/login",
            json={"username": username, "password": "wrong password"},
            headers={"X-Forwarded-For": f"192.0.2.{i + 1}"},
            timeout=30,
        )
        codes.append(r.status_code)
    return codes


def _recorded_addresses(home: Path, username: str) -> set[str]:
    from ferryman.config.settings import load_settings

    db = Database(load_settings({"FERRYMAN_HOME": str(home)}).database_url)
    try:
        with db.read() as s:
            return set(s.scalars(select(LoginFailure.ip).where(LoginFailure.username == username)))
    finally:
        db.dispose()


def test_x_forwarded_for_counts_only_from_a_proxy_the_server_was_told_to_trust(tmp_path):
    home = tmp_path / "home"
    guesses = users.FREE_PER_USER_AND_IP + 2
    with running_server(home, env={"FERRYMAN_FORWARDED_ALLOW_IPS": ""}) as url:
        codes = _spoofed_guesses(url, "admin", guesses)  # from the default "trusted" 127.0.0.1
    assert _recorded_addresses(home, "admin") == {"127.0.0.1"}  # the peer, whatever it claims
    assert codes[: users.FREE_PER_USER_AND_IP] == [401] * users.FREE_PER_USER_AND_IP
    assert 429 in codes[users.FREE_PER_USER_AND_IP :]
    with running_server(home, env={"FERRYMAN_FORWARDED_ALLOW_IPS": "127.0.0.1"}) as url:
        codes = _spoofed_guesses(url, "admin2", guesses)  # behind a configured proxy
    assert _recorded_addresses(home, "admin2") == {f"192.0.2.{i + 1}" for i in range(guesses)}
    assert codes == [401] * guesses  # each client address counted on its own


# --- 3. the console checks access again while it streams --------------------------------------


def _stream_until_closed(client: TestClient, url: str, headers: dict[str, str], cut: Any) -> int:
    with client.websocket_connect(url, headers=headers) as ws:
        assert ws.receive_json()["type"] == "deploy"  # streaming: the deploy is queued
        cut()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                ws.receive_json()
            except WebSocketDisconnect as closed:
                return int(closed.code)
        raise AssertionError("the stream went on after access was lost")


@pytest.mark.parametrize("how", ["removed", "disabled", "token revoked"])
def test_an_open_console_is_closed_when_the_viewer_loses_access(world, client, how):
    name = _user(world, "reporter")
    actor = users.actor_for_token(world.db, users.login(world.db, name, PASSWORD))
    token = users.create_token(world.db, actor, "console", ["read"])
    deploy_id = world.queued_deploy()

    def cut() -> None:
        if how == "removed":
            spaces.remove_member(world.db, SYSTEM, SPACE, name)
        elif how == "disabled":
            users.update_user(world.db, world.actors["super"], name, is_active=False)
        else:
            users.revoke_token(world.db, actor, token["id"])

    url = f"{P}/deploys/{deploy_id}/stream"
    code = _stream_until_closed(client, url, _bearer(token["token"]), cut)
    assert code == 1008  # policy violation


# --- 4. smaller holes --------------------------------------------------------------------------


@pytest.mark.parametrize("to", ["../../etc", "-rf", "v1;id", "20260101-000000_v1_abc1234\n"])
def test_a_rollback_ticket_to_something_that_is_not_a_release_is_refused_at_once(world, client, to):
    ticket_id = world.deployed_ticket()
    r = client.post(
        f"{P}/tickets/{ticket_id}/rollback",
        json={"to": to},
        headers=_bearer(world.tokens["master"]),
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input"
    with world.db.read() as s:
        assert s.scalars(select(Ticket).where(Ticket.rollback_of == ticket_id)).all() == []
    with pytest.raises(ValidationError):
        tickets.rollback_ticket(world.db, world.actors["master"], ticket_id, to=to)


def test_a_rollback_deploy_to_a_release_name_with_a_newline_is_refused(world, client):
    r = client.post(
        f"{P}/projects/{world.project_id}/rollbacks",
        json={"env": "staging", "to": "20260101-000000_v1_abc1234\n"},
        headers=_bearer(world.tokens["master"]),
    )
    assert r.status_code == 422, r.text


def test_five_thousand_nested_brackets_in_a_yaml_field_are_a_form_error_not_a_500(world, client):
    cookie, csrf = _session(client, "super-user")
    client.cookies.set("ferryman_session", cookie)
    form = {
        "csrf": csrf,
        "project": fresh("bomb"),
        "repo": world.repo_url,
        "env.staging.enabled": "1",
        "env.staging.hosts": "127.0.0.2:1",
        "env.staging.user": "root",
        "env.staging.webroot": "/srv/www/bomb",
        "env.staging.releases": "/srv/releases/bomb",
        "env.staging.strategy": "[" * 5000,
    }
    r = client.post(f"/s/{SPACE}/projects", data=form, follow_redirects=False)
    assert r.status_code == 422, r.status_code
    assert "strategy" in r.text


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), float("-inf"), "nan", "1" + "0" * 400 + "h"]
)
def test_durations_that_are_not_finite_are_refused(value):
    with pytest.raises(ValidationError):
        duration(value)


def test_the_database_file_and_its_journal_are_readable_by_the_server_only(tmp_path):
    old = os.umask(0o022)
    try:
        db = Database(f"sqlite:///{tmp_path}/home/ferryman.db")
        db.upgrade()
        with db.transaction() as s:
            s.execute(update(LoginFailure).values(ip=""))
        files = sorted(tmp_path.glob("home/ferryman.db*"))
        modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
        db.dispose()
    finally:
        os.umask(old)
    assert "ferryman.db" in modes and "ferryman.db-wal" in modes
    assert set(modes.values()) == {0o600}, modes


def test_reporters_do_not_see_where_a_pull_artifact_lies_on_the_server(world, client):
    deploy_id = world.queued_deploy()
    secret_path = str(world.settings.home / "artifacts" / f"deploy-{deploy_id}" / "r.tar.gz")
    artifact = {"path": secret_path, "sha256": "ab" * 32, "size": 3, "release": "r"}
    deploy_records.set_options(world.db, deploy_id, {"artifact": artifact})
    for role in ("reporter", "master"):
        r = client.get(f"{P}/deploys/{deploy_id}", headers=_bearer(world.tokens[role]))
        assert r.status_code == 200
        assert str(world.settings.home) not in r.text
        assert r.json()["options"]["artifact"]["sha256"] == "ab" * 32
    listed = client.get(f"{P}/deploys", headers=_bearer(world.tokens["reporter"]))
    assert str(world.settings.home) not in listed.text


def test_the_user_list_shows_only_people_who_share_a_space(world, client):
    stranger = _user(world, "owner", space="other")
    seen = client.get(f"{P}/users", headers=_bearer(world.tokens["reporter"])).json()
    names = {u["username"] for u in seen}
    assert {"reporter-user", "owner-user"} <= names
    assert stranger not in names and "other-user" not in names and "super-user" not in names
    everyone = client.get(f"{P}/users", headers=_bearer(world.tokens["super"])).json()
    assert stranger in {u["username"] for u in everyone}
