"""Issue 14's attacks, tried the way an attacker with a member account would, on the real
fleet: each is refused with a clear error, nothing runs and no host changes."""

from __future__ import annotations

import asyncio

import pytest

from ferryman.db.models import Server, Ticket
from ferryman.db.session import Database
from ferryman.errors import (
    ApprovalRequired,
    ApprovalStale,
    ConfigError,
    Conflict,
    PermissionDenied,
)
from ferryman.services import deploys, host_keys, inventory, projects, spaces, tickets
from ferryman.services.audit import SYSTEM
from tests.conftest import set_approval
from tests.helpers import Repo, deploy, finish, live, project_config, release_dirs, unique
from tests.helpers import apply_as as _apply
from tests.helpers import member as _user

pytestmark = pytest.mark.fleet
PASSWORD = "correct horse battery"


def _marker_config(name: str, repo: Repo, hosts, marker: str, **env) -> dict:
    tasks = {"pre_release": f"touch /srv/{marker}\n"}
    return project_config(name, repo.url, hosts, tasks=tasks, **env)


def test_a_developer_cannot_create_a_project_that_runs_hooks_on_the_deploy_host(
    db, settings, git_host, targets, tmp_path
):
    dev = _user(db, unique("dev"), role="developer")
    repo = Repo(git_host, tmp_path, unique("dh"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    marker = tmp_path / "pwned"
    config = project_config(
        repo.name, repo.url, targets[:1], tasks={"post_deploy": f"touch {marker}\n"}
    )
    with pytest.raises(PermissionDenied, match=r"project\.create needs the master role"):
        _apply(db, dev, config)
    assert projects.list_projects(db, SYSTEM) == [] or all(
        p["name"] != repo.name for p in projects.list_projects(db, SYSTEM)
    )
    assert not marker.exists()


def test_a_dev_project_naming_production_servers_needs_the_production_approval(
    db, settings, git_host, targets, tmp_path
):
    set_approval(db, "production", True)
    master = _user(db, unique("mia"), role="master")
    dev = _user(db, unique("dev"), role="developer")
    repo = Repo(git_host, tmp_path, unique("site"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    web = targets[:2]
    # The production project: its servers now serve production.
    _apply(db, master, project_config(repo.name, repo.url, web))
    # A "hotfix" project names the same servers under dev (no approval needed there).
    hotfix = unique("hotfix")
    config = _marker_config(hotfix, repo, web, f"{hotfix}.pwned")
    config["environments"] = {"dev": config["environments"]["production"]}
    _apply(db, master, config)
    with pytest.raises(ApprovalRequired, match="touches servers of production"):
        deploys.request_deploy(db, dev, hotfix, "dev", "v1")
    # The ticket it must take goes to review, not straight to approved.
    ticket = asyncio.run(
        tickets.create_ticket(db, settings, dev, hotfix, "dev", "v1", title="deface")
    )
    assert ticket["status"] == "pending_approval"
    with pytest.raises(Conflict):
        tickets.deploy_ticket(db, dev, ticket["id"])
    for host in web:
        assert not host.path(f"/srv/{hotfix}.pwned").exists()
        assert release_dirs(host, hotfix) == []
    # Servers of an environment are visible, and a master may change them.
    rows = {r["address"]: r for r in inventory.list_servers(db, master, "default")}
    assert rows[web[0].address]["environments"] == ["dev", "production"]


def test_an_approved_ticket_whose_hooks_changed_goes_back_to_review(
    db, settings, git_host, targets, tmp_path
):
    set_approval(db, "production", True)
    master = _user(db, unique("mia"), role="master")
    approver = _user(db, unique("max"), role="master")
    dev = _user(db, unique("dev"), role="developer")
    repo = Repo(git_host, tmp_path, unique("app"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    web = targets[:2]
    _apply(db, master, project_config(repo.name, repo.url, web))
    ticket = asyncio.run(
        tickets.create_ticket(db, settings, dev, repo.name, "production", "v1", title="v1")
    )
    tickets.approve_ticket(db, approver, ticket["id"], "ok")
    # After the approval, the hooks change.
    _apply(db, master, _marker_config(repo.name, repo, web, f"{repo.name}.unreviewed"))
    with pytest.raises(ApprovalStale, match="changed after ticket"):
        tickets.deploy_ticket(db, dev, ticket["id"])
    after = tickets.get_ticket(db, dev, ticket["id"])
    assert after["status"] == "pending_approval"
    assert after["deploy_id"] is None
    for host in web:
        assert not host.path(f"/srv/{repo.name}.unreviewed").exists()
        assert live(host, repo.name) is None
    # Approved again, it ships exactly what was reviewed now.
    tickets.approve_ticket(db, approver, ticket["id"], "hooks reviewed")
    queued = tickets.deploy_ticket(db, dev, ticket["id"])
    result = finish(db, settings, queued["deploy_id"])
    assert result["status"] == "success", result["error"]
    for host in web:
        assert host.path(f"/srv/{repo.name}.unreviewed").exists()


def test_another_spaces_master_cannot_reach_this_spaces_hosts(
    db, settings, git_host, targets, tmp_path
):
    spaces.create_space(db, SYSTEM, "rivals")
    rival = _user(db, unique("olga"), space="rivals", role="master")
    repo = Repo(git_host, tmp_path, unique("rv"))
    repo.commit({"index.html": "evil\n"}, tag="v1")
    marker = f"{repo.name}.pwned"
    config = _marker_config(repo.name, repo, targets[:1], marker)
    config["space"] = "rivals"
    config["environments"] = {"dev": config["environments"]["production"]}
    _apply(db, rival, config)  # registers a server of *rivals* at that address
    d = deploys.request_deploy(db, rival, f"rivals:{repo.name}", "dev", "v1")
    result = finish(db, settings, d.id)
    assert result["status"] == "failed"
    assert "permission denied" in result["error"]["message"]
    assert "spaces" in result["error"]["message"]  # the rivals' own key, not the server's
    assert not targets[0].path(f"/srv/{marker}").exists()
    assert release_dirs(targets[0], repo.name) == []


def test_only_the_pinned_host_key_is_accepted(db, settings, git_host, targets, tmp_path):
    host, other = targets[0], targets[1]
    kept = [  # the install-wide file no longer vouches for the target
        line
        for line in settings.known_hosts.read_text().splitlines()
        if line.split()[:1] != [host.address]
    ]
    settings.known_hosts.write_text("\n".join(kept) + "\n")
    master = _user(db, unique("mia"), role="master")
    repo = Repo(git_host, tmp_path, unique("pin"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    _apply(db, master, project_config(repo.name, repo.url, [host]))
    result = deploy(db, settings, repo.name, "v1")
    assert result["status"] == "failed"
    assert "pin it with `ferryman server trust`" in result["error"]["message"]
    server_id = _server_id(db, host.address)
    seen = asyncio.run(host_keys.server_key(db, master, server_id))
    with pytest.raises(Conflict, match="nothing pinned"):
        asyncio.run(host_keys.trust_server(db, master, server_id, "SHA256:forged"))
    asyncio.run(host_keys.trust_server(db, master, server_id, seen["presented"]))
    result = deploy(db, settings, repo.name, "v1")
    assert result["status"] == "success", result["error"]
    # A pinned key of another host (a man in the middle) is refused.
    other_key = asyncio.run(host_keys.scan(other.address, 22, other.address))
    asyncio.run(
        host_keys.trust_server(
            db, master, server_id, key=other_key.export_public_key("openssh").decode()
        )
    )
    repo.commit({"index.html": "v2\n"}, tag="v2")
    result = deploy(db, settings, repo.name, "v2")
    assert result["status"] == "failed"
    assert "not the key pinned" in result["error"]["message"]
    serving = live(host, repo.name)
    assert serving is not None and "v1" in serving, serving


def _server_id(db: Database, address: str) -> int:
    with db.read() as s:
        return next(x.id for x in s.query(Server).all() if x.address == address)


def test_a_developer_cannot_trust_host_keys_or_a_reporter_read_the_trust_routes(
    db, settings, targets
):
    dev = _user(db, unique("dev"), role="developer")
    server = inventory.create_server(db, SYSTEM, "default", unique("web"), targets[0].address)
    with pytest.raises(PermissionDenied):
        asyncio.run(host_keys.server_key(db, dev, server["id"]))
    with pytest.raises(PermissionDenied):
        asyncio.run(host_keys.trust_repo_host(db, dev, "default", targets[0].address, "x"))


def test_free_key_and_known_hosts_paths_are_a_superusers_setting(
    db, settings, git_host, targets, tmp_path
):
    master = _user(db, unique("mia"), role="master")
    repo = Repo(git_host, tmp_path, unique("kh"))
    for key, value in (
        ("known_hosts", "/dev/null"),
        ("ssh_key", str(settings.ssh_key)),
        ("repo_known_hosts", "/tmp/mine"),
        ("repo_ssh_key", "/root/.ssh/id_rsa"),
    ):
        config = project_config(repo.name, repo.url, targets[:1], **{key: value})
        with pytest.raises(ConfigError) as caught:
            _apply(db, master, config)
        assert f"environments/production/{key}: a path on the deploy host" in str(caught.value)
    # The install's superuser may (they own the deploy host anyway).
    _apply(db, SYSTEM, project_config(repo.name, repo.url, targets[:1], known_hosts="/dev/null"))


@pytest.mark.parametrize(
    "check",
    [
        {"http": "http://127.0.0.1:5432/"},
        {"http": "http://169.254.169.254/latest/meta-data/"},
        {"http": "http://{HOST}@10.0.0.1/"},
        {"tcp": "127.0.0.1:3306"},
        {"tcp": "localhost:22"},
    ],
)
def test_deploy_host_health_checks_reach_only_the_host_being_checked(
    db, settings, git_host, targets, tmp_path, check
):
    master = _user(db, unique("mia"), role="master")
    config = project_config(
        unique("hc"), "ssh://git@127.0.0.1/x.git", targets[:1], health_check=[check]
    )
    with pytest.raises(ConfigError) as caught:
        _apply(db, master, config)
    assert "must be {HOST}" in str(caught.value) or "give {HOST}:PORT" in str(caught.value)


def test_hosts_outside_the_inventory_are_refused_for_non_masters_and_registered_for_masters(
    db, settings, targets
):
    master = _user(db, unique("mia"), role="master")
    dev = _user(db, unique("dev"), role="developer")
    name = unique("inv")
    _apply(db, master, project_config(name, "ssh://git@127.0.0.1/x.git", targets[:1]))
    # A developer given a master override on the project is not a space master.
    projects.set_project_member(db, SYSTEM, name, dev.username, "master")
    config = project_config(name, "ssh://git@127.0.0.1/x.git", targets[:2])
    with pytest.raises(ConfigError) as caught:
        _apply(db, dev, config)
    assert f"{targets[1].address} is not a server of the space" in str(caught.value)
    assert {s["address"] for s in inventory.list_servers(db, SYSTEM, "default")} == {
        targets[0].address
    }
    _apply(db, master, config)
    rows = inventory.list_servers(db, SYSTEM, "default")
    assert {s["address"] for s in rows} == {targets[0].address, targets[1].address}


def test_a_task_timeout_above_the_spaces_maximum_is_refused(db, settings, targets):
    master = _user(db, unique("mia"), role="master")
    config = project_config(
        unique("tt"), "ssh://git@127.0.0.1/x.git", targets[:1], task_timeout=7200
    )
    with pytest.raises(ConfigError, match="may not"):
        _apply(db, master, config)


def test_a_file_repository_is_refused_unless_a_superuser_allows_it(db, settings, targets):
    master = _user(db, unique("mia"), role="master")
    config = project_config(unique("lr"), "file:///srv/git/other-space.git", targets[:1])
    with pytest.raises(ConfigError, match="local repositories"):
        _apply(db, master, config)


def test_a_retry_of_a_failed_ticket_deploy_needs_a_new_approval_after_a_change(
    db, settings, git_host, targets, tmp_path
):
    set_approval(db, "production", True)
    master = _user(db, unique("mia"), role="master")
    approver = _user(db, unique("max"), role="master")
    dev = _user(db, unique("dev"), role="developer")
    repo = Repo(git_host, tmp_path, unique("rt"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    web = targets[:1]
    _apply(db, master, project_config(repo.name, repo.url, web, tasks={"pre_release": "exit 3\n"}))
    ticket = asyncio.run(
        tickets.create_ticket(db, settings, dev, repo.name, "production", "v1", title="v1")
    )
    tickets.approve_ticket(db, approver, ticket["id"])
    failed = finish(db, settings, tickets.deploy_ticket(db, dev, ticket["id"])["deploy_id"])
    assert failed["status"] == "failed"
    _apply(db, master, _marker_config(repo.name, repo, web, f"{repo.name}.unreviewed"))
    with pytest.raises(ApprovalStale):
        deploys.request_retry(db, dev, failed["id"])
    assert tickets.get_ticket(db, dev, ticket["id"])["status"] == "pending_approval"
    assert not web[0].path(f"/srv/{repo.name}.unreviewed").exists()


def test_approvals_from_before_digests_hold_while_the_project_is_unchanged(
    db, settings, git_host, targets, tmp_path
):
    set_approval(db, "production", True)
    master = _user(db, unique("mia"), role="master")
    approver = _user(db, unique("max"), role="master")
    dev = _user(db, unique("dev"), role="developer")
    name = unique("legacy")
    _apply(db, master, project_config(name, "ssh://git@127.0.0.1/x.git", targets[:1]))
    with db.transaction() as s:
        project = projects.find_project(s, SYSTEM, name, "project.read")
        ticket = Ticket(
            space_id=project.space_id,
            project_id=project.id,
            env="production",
            ref="v1",
            commit="a" * 40,
            title="from 0012",
            status="approved",
            reviewed_by_name=approver.username,
            reviewed_at=project.updated_at,
            created_by=dev.id,
            created_by_name=dev.username,
        )
        s.add(ticket)
        s.flush()
        ticket_id = ticket.id
        assert tickets.stale_approval(s, ticket, project) == ""
    changed = project_config(
        name, "ssh://git@127.0.0.1/x.git", targets[:1], tasks={"pre_release": "true\n"}
    )
    _apply(db, master, changed)
    with db.read() as s:
        project = projects.find_project(s, SYSTEM, name, "project.read")
        ticket = s.get(Ticket, ticket_id)
        assert "changed after ticket" in tickets.stale_approval(s, ticket, project)


def test_a_server_a_project_names_cannot_be_removed_from_under_it(db, settings, targets):
    master = _user(db, unique("mia"), role="master")
    name = unique("held")
    _apply(db, master, project_config(name, "ssh://git@127.0.0.1/x.git", targets[:1]))
    server_id = _server_id(db, targets[0].address)
    with pytest.raises(Conflict, match=f"named by project\\(s\\) {name}"):
        inventory.delete_server(db, master, server_id)
    _apply(db, master, project_config(name, "ssh://git@127.0.0.1/x.git", targets[1:2]))
    inventory.delete_server(db, master, server_id)
