"""A fresh install with one admin: the README's own commands work as written, and an owner
alone on a server can approve their own ticket only where the server allows it, with a reason."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ferryman.errors import OwnTicket, ValidationError
from ferryman.services import audit_views, spaces, tickets, users
from ferryman.services.audit import SYSTEM, Actor
from tests.conftest import set_approval
from tests.helpers import Repo, project_config, read_live, running_server, unique

pytestmark = pytest.mark.fleet
ROOT = Path(__file__).resolve().parents[2]
EXE = shutil.which("ferryman", path=os.path.dirname(sys.executable)) or "ferryman"


def readme_commands() -> list[str]:
    """The README's "From the command line" block, one command a line, comments dropped."""
    text = (ROOT / "README.md").read_text()
    block = text.split("From the command line:", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def fresh_home(tmp_path: Path, fleet) -> Path:
    """A new FERRYMAN_HOME whose server key is the one the test fleet's hosts accept (what
    putting `ferryman ssh-key`'s output into authorized_keys does on real hosts)."""
    home = tmp_path / "home"
    (home / "ssh").mkdir(parents=True)
    shutil.copy(fleet.client_key, home / "ssh" / "id_ed25519")
    shutil.copy(fleet.known_hosts, home / "ssh" / "known_hosts")
    public = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(fleet.client_key)], capture_output=True, text=True
    ).stdout
    (home / "ssh" / "id_ed25519.pub").write_text(public)
    return home


def cli_runner(home: Path, tmp_path: Path):
    env = {**os.environ, "FERRYMAN_HOME": str(home), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    env.pop("FERRYMAN_URL", None)
    env.pop("FERRYMAN_TOKEN", None)

    def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([EXE, *args], env=env, capture_output=True, text=True, timeout=180)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    return cli


def test_the_readme_commands_deploy_on_a_fresh_install_with_one_admin(
    fleet, git_host, targets, tmp_path
):
    home = fresh_home(tmp_path, fleet)
    cli = cli_runner(home, tmp_path)
    repo = Repo(git_host, tmp_path, unique("website"))
    repo.commit({"index.html": "second\n"}, tag="v1.2.0")
    project = tmp_path / "project.yaml"
    project.write_text(yaml.safe_dump(project_config(repo.name, repo.url, targets)))
    with running_server(home, {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}) as url:
        ran = []
        for line in readme_commands():
            words = shlex.split(line)
            if words[1] in ("rollback", "logs", "cancel", "retry"):
                break  # a rollback needs an earlier release; the rest name older deploys
            words = [
                {
                    "website": repo.name,
                    "project.yaml": str(project),
                    "http://127.0.0.1:8080": url,
                    "…": "a long secret",
                }.get(word, word)
                for word in words[1:]
            ]
            result = cli(*words)
            ran.append(words[0])
            if words[0] == "deploy":
                assert "succeeded" in result.stdout
                assert {read_live(h, repo.name, "index.html") for h in targets} == {"second\n"}
        assert ran == ["admin", "ssh-key", "login", "env", "apply", "check", "deploy", "releases"]


@pytest.fixture
def solo(db, settings, git_host, targets, tmp_path):
    """Production needing approval; an owner (olga) and a master (max) of the default space;
    a project with a tag v1."""
    from tests.helpers import apply

    set_approval(db, "production", True)
    people = {}
    for name, role in (("olga", "owner"), ("max", "master")):
        people[name] = users.create_user(db, name, "correct horse battery")
        spaces.set_member(db, SYSTEM, "default", name, role)
    repo = Repo(git_host, tmp_path, unique("solo"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, targets))
    return people, repo


def _ticket(db, settings, actor: Actor, repo: Repo) -> int:
    import asyncio

    made = asyncio.run(
        tickets.create_ticket(db, settings, actor, repo.name, "production", "v1", title="ship v1")
    )
    assert made["status"] == "pending_approval"
    return int(made["id"])


def test_by_default_nobody_approves_their_own_ticket_and_the_refusal_says_how(
    db, settings, solo, monkeypatch
):
    monkeypatch.delenv("FERRYMAN_SELF_APPROVAL", raising=False)
    people, repo = solo
    ticket = _ticket(db, settings, people["olga"], repo)
    with pytest.raises(OwnTicket) as refused:
        tickets.approve_ticket(db, people["olga"], ticket, "I am alone here")
    said = str(refused.value)
    assert "another master must approve it" in said
    assert "--role master" in said and "--no-approval" in said
    assert "FERRYMAN_SELF_APPROVAL=owners" in said
    assert tickets.get_ticket(db, people["olga"], ticket)["status"] == "pending_approval"


def test_an_owner_alone_approves_their_own_ticket_with_a_reason_where_the_server_allows_it(
    db, settings, solo, monkeypatch
):
    monkeypatch.setenv("FERRYMAN_SELF_APPROVAL", "owners")
    people, repo = solo
    ticket = _ticket(db, settings, people["olga"], repo)
    with pytest.raises(ValidationError, match="needs a written reason"):
        tickets.approve_ticket(db, people["olga"], ticket, "   ")
    approved = tickets.approve_ticket(db, people["olga"], ticket, "solo install, reviewed v1")
    assert approved["status"] == "approved"
    assert approved["review_comment"] == "self-approved: solo install, reviewed v1"
    rows = audit_views.read_audit(db, people["olga"], space="default", action="ticket.approve")
    assert rows[0]["detail"]["self_approved"] is True
    assert rows[0]["actor"] == "olga"


def test_a_master_who_is_no_owner_never_approves_their_own_ticket(db, settings, solo, monkeypatch):
    monkeypatch.setenv("FERRYMAN_SELF_APPROVAL", "owners")
    people, repo = solo
    ticket = _ticket(db, settings, people["max"], repo)
    with pytest.raises(OwnTicket, match="only an owner"):
        tickets.approve_ticket(db, people["max"], ticket, "trust me")
    # and another master still approves it as ever, not marked self-approved
    approved = tickets.approve_ticket(db, people["olga"], ticket, "looks right")
    assert approved["review_comment"] == "looks right"
