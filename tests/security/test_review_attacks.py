"""A review of issue 14's boundaries, attacked as a developer, as the master of another space
and as a malicious repository, on the real fleet. Each test is an attack that still works
(it fails until the boundary holds): it asserts on host state, marker files, what a hook
printed, or the records."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from ferryman.config.settings import Settings
from ferryman.errors import ApprovalStale, FerrymanError, VcsError
from ferryman.services import deploy_views, deploys, projects, spaces, tickets
from ferryman.services.audit import SYSTEM
from tests.conftest import NET, set_approval
from tests.helpers import Repo, finish, git, project_config, release_dirs, unique
from tests.helpers import apply_as as _apply
from tests.helpers import member as _user

pytestmark = pytest.mark.fleet
PASSWORD = "correct horse battery"


def _log(db, deploy_id: int) -> str:
    return "\n".join(x["text"] for x in deploy_views.logs_after(db, deploy_id, 0, 5000))


@pytest.fixture
def sandboxed(settings: Settings) -> Settings:
    """The sandbox on, with uids of this run's own range (tests run concurrently)."""
    base = 1_960_000_000 + int(NET.rsplit(".", 1)[1]) * 10_000
    return dataclasses.replace(settings, sandbox="auto", sandbox_uid_base=base)


# --- approval ---------------------------------------------------------------------------------


def test_a_failed_ticket_deployed_again_after_its_hooks_changed_needs_a_new_approval(
    db, sandboxed, git_host, targets, tmp_path
):
    """The retry route checks the digest; ``deploy_ticket`` on a *failed* ticket does not
    (it only checks tickets in ``approved``), and failed → queued is an allowed move."""
    settings = sandboxed
    set_approval(db, "production", True)
    master = _user(db, unique("mia"), role="master")
    approver = _user(db, unique("max"), role="master")
    dev = _user(db, unique("dev"), role="developer")
    repo = Repo(git_host, tmp_path, unique("ft"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    web = targets[:1]
    _apply(db, master, project_config(repo.name, repo.url, web, tasks={"pre_release": "exit 3\n"}))
    ticket = asyncio.run(
        tickets.create_ticket(db, settings, dev, repo.name, "production", "v1", title="v1")
    )
    tickets.approve_ticket(db, approver, ticket["id"], "reviewed: v1 with its hooks")
    failed = finish(db, settings, tickets.deploy_ticket(db, dev, ticket["id"])["deploy_id"])
    assert failed["status"] == "failed"
    # After the approval, what runs changes (nobody reviews it).
    marker = f"{repo.name}.unreviewed"
    changed = project_config(
        repo.name, repo.url, web, tasks={"pre_release": f"touch /srv/{marker}\n"}
    )
    _apply(db, master, changed)
    try:
        again = tickets.deploy_ticket(db, dev, ticket["id"])  # not a retry: deploy it again
    except ApprovalStale:
        again = None
    if again is not None and again.get("deploy_id"):
        finish(db, settings, again["deploy_id"])
    assert not web[0].path(f"/srv/{marker}").exists(), (
        "a failed ticket was deployed again with hooks nobody approved"
    )
    assert tickets.get_ticket(db, dev, ticket["id"])["status"] == "pending_approval"


def test_an_approved_ticket_ships_the_variables_that_were_approved(
    db, sandboxed, git_host, targets, tmp_path
):
    """The approval digest covers hooks, hosts and config-file versions but not the deploy's
    variables (project secrets, the space environment's variables), which hooks use. A
    developer with a master override on the project (allowed to set its secrets, not to
    approve their own ticket) changes one after the approval; production gets it unreviewed."""
    from ferryman.services import secrets

    settings = sandboxed
    set_approval(db, "production", True)
    master = _user(db, unique("mia"), role="master")
    approver = _user(db, unique("max"), role="master")
    dev = _user(db, unique("dev"), role="developer")
    repo = Repo(git_host, tmp_path, unique("vars"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    marker = f"{repo.name}.db"
    tasks = {"pre_release": f'printf %s "$DB_HOST" > /srv/{marker}\n'}
    _apply(
        db,
        master,
        project_config(repo.name, repo.url, targets[:1], tasks=tasks, secrets=["DB_HOST"]),
    )
    secrets.set_secret(db, master, repo.name, "production", "DB_HOST", "db1.internal")
    projects.set_project_member(db, SYSTEM, repo.name, dev.username, "master")
    ticket = asyncio.run(
        tickets.create_ticket(db, settings, dev, repo.name, "production", "v1", title="v1")
    )
    tickets.approve_ticket(db, approver, ticket["id"], "v1 against db1")
    secrets.set_secret(db, dev, repo.name, "production", "DB_HOST", "attacker.example")
    try:
        queued = tickets.deploy_ticket(db, dev, ticket["id"])
        finish(db, settings, queued["deploy_id"])
    except ApprovalStale:
        pass
    shipped = targets[0].path(f"/srv/{marker}")
    assert not shipped.exists() or shipped.read_text() == "db1.internal", (
        f"production got {shipped.read_text()!r}, a value set after the approval"
    )


# --- keys -------------------------------------------------------------------------------------


def test_another_spaces_master_cannot_read_a_repository_with_the_servers_key(
    db, sandboxed, git_host, targets, tmp_path
):
    """Ticket creation (``repos.resolve``), the ticket preview (``repos.changes``) and the
    refs route (``repos.refs``) open the repository without the project's space: the server's
    own key (the default space's), its known_hosts, local repositories allowed, and a
    mirror shared by every space (``repos/0``)."""
    settings = sandboxed
    # The default space's private repository: only the server's (default space's) key reads it.
    private = Repo(git_host, tmp_path, unique("private"))
    secret_commit = private.commit(
        {"index.html": "v1\n", "payroll.csv": "ceo,1000000\n"}, "add payroll", tag="v1"
    )
    spaces.create_space(db, SYSTEM, "rivals")
    rival = _user(db, unique("olga"), space="rivals", role="master")
    config = project_config(unique("peek"), private.url, targets[:1])
    config["space"] = "rivals"
    config["environments"] = {"dev": config["environments"]["production"]}
    _apply(db, rival, config)
    name = f"rivals:{config['project']}"
    try:
        made = asyncio.run(tickets.create_ticket(db, settings, rival, name, "dev", "v1", title="x"))
    except VcsError:
        made = None
    leaked = made["commit"] if made else ""
    files: list[str] = []
    if made:
        view = asyncio.run(tickets.preview(db, settings, rival, made["id"]))
        files = [f["path"] for change in view["changes"] for f in change["files"]]
    assert leaked != secret_commit and "payroll.csv" not in files, (
        f"space rivals read the default space's repository with the server's key: "
        f"commit {leaked}, files {files}"
    )
    assert not (settings.repo_cache / "0").exists(), "a mirror shared by every space was made"


def test_the_refs_route_reads_with_the_projects_space_key(
    db, sandboxed, git_host, targets, tmp_path
):
    """``GET /projects/{p}/refs`` (reporters may call it) opens the repository without the
    space: a master of another space points a project at a repository only the server's key
    reads, and its reporter lists branches, tags and commit messages."""
    from ferryman.api.routes import projects as routes

    settings = sandboxed
    private = Repo(git_host, tmp_path, unique("private"))
    private.commit({"index.html": "v1\n"}, "acquire competitor: signed", tag="v1")
    spaces.create_space(db, SYSTEM, "rivals2")
    rival = _user(db, unique("olga"), space="rivals2", role="master")
    config = project_config(unique("peek"), private.url, targets[:1])
    config["space"] = "rivals2"
    config["environments"] = {"dev": config["environments"]["production"]}
    _apply(db, rival, config)
    try:
        found = asyncio.run(
            routes.refs(
                f"rivals2:{config['project']}", db, settings, rival, branch=None, env=None, limit=5
            )
        )
    except FerrymanError:
        found = {"commits": []}
    messages = [c["message"] for c in found["commits"]]
    assert "acquire competitor: signed" not in messages, (
        "another space listed a repository's commits with the server's key"
    )


# --- repository content -----------------------------------------------------------------------


def _bare_with(host, tmp_path: Path, name: str, files: dict[str, str]) -> str:
    """A bare repository on ``host`` (what an ops repo or etckeeper leaves on a server)."""
    bare = host.path(f"/srv/{name}.git")
    git("init", "--bare", "-q", "-b", "master", str(bare), cwd=tmp_path)
    work = tmp_path / f"{name}-work"
    git("init", "-q", "-b", "master", str(work), cwd=tmp_path)
    for rel, text in files.items():
        (work / rel).write_text(text)
    git("add", "-A", cwd=work)
    git("-c", "user.email=o@x", "-c", "user.name=ops", "commit", "-q", "-m", "ops", cwd=work)
    git("push", "-q", str(bare), "HEAD:master", cwd=work)
    return git("rev-parse", "HEAD", cwd=work).strip()


def _add_gitlink(repo: Repo, path: str, url: str, commit: str) -> None:
    (repo.work / ".gitmodules").write_text(
        f'[submodule "{path}"]\n\tpath = {path}\n\turl = {url}\n'
    )
    git("add", ".gitmodules", cwd=repo.work)
    git("update-index", "--add", "--cacheinfo", f"160000,{commit},{path}", cwd=repo.work)
    git("commit", "-q", "-m", f"vendor {path}", cwd=repo.work)


def test_a_repository_cannot_make_the_checkout_fetch_from_a_production_server_with_the_space_key(
    db, sandboxed, git_host, targets, tmp_path
):
    """A submodule only has to use the repository's protocol (ssh): its *host* is free, and the
    sandboxed checkout carries the space's key (root on every server of the space) and the
    server's known_hosts. A developer who can push to a dev project's repository reads any git
    repository on a production server (an ops repo, etckeeper's /etc) into a dev release —
    no approval, no master. svn externals are held to the repository's own server; git's
    submodules are not."""
    settings = sandboxed
    set_approval(db, "production", True)
    master = _user(db, unique("mia"), role="master")
    dev = _user(db, unique("dev"), role="developer")
    prod, dev_host = targets[1], targets[0]
    ops = unique("ops")
    ops_commit = _bare_with(prod, tmp_path, ops, {"db_password.txt": "pr0d-db-pass\n"})
    # A production project owns the production server.
    site = Repo(git_host, tmp_path, unique("site"))
    site.commit({"index.html": "v1\n"}, tag="v1")
    _apply(db, master, project_config(site.name, site.url, [prod]))
    # A dev project the developer pushes to.
    repo = Repo(git_host, tmp_path, unique("devapp"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    _add_gitlink(repo, "vendor", f"ssh://root@{prod.address}/srv/{ops}.git", ops_commit)
    git("tag", "v2", cwd=repo.work)
    git("push", "-q", "origin", "HEAD:master", "--tags", cwd=repo.work)
    config = project_config(repo.name, repo.url, [dev_host])
    config["environments"] = {"dev": config["environments"]["production"]}
    _apply(db, master, config)
    d = deploys.request_deploy(db, dev, repo.name, "dev", "v2")  # no approval needed in dev
    result = finish(db, settings, d.id)
    shipped = [
        p for p in dev_host.path(f"/srv/releases/{repo.name}").glob("*/vendor/db_password.txt")
    ]
    assert shipped == [] and result["status"] == "failed", (
        f"the checkout read {prod.address}:/srv/{ops}.git with the space's key and shipped "
        f"{shipped}"
    )


def test_a_master_cannot_point_a_superusers_key_path_at_another_spaces_server(
    db, sandboxed, git_host, targets, tmp_path
):
    """``ssh_key`` is a superuser's setting, but ``check_policy`` only refuses a *changed*
    value: once a superuser gave a rivals project the server's key (for their own box), the
    rivals' master keeps it and changes the hosts — registering a rivals server at the
    default space's production address — and deploys there as root with the default space's
    key."""
    settings = sandboxed
    spaces.create_space(db, SYSTEM, "rivals3")
    rival = _user(db, unique("olga"), space="rivals3", role="master")
    master = _user(db, unique("mia"), role="master")
    site = Repo(git_host, tmp_path, unique("site"))
    site.commit({"index.html": "v1\n"}, tag="v1")
    _apply(db, master, project_config(site.name, site.url, [targets[0]]))  # default's prod
    repo = Repo(git_host, tmp_path, unique("legacy"))
    repo.commit({"index.html": "evil\n"}, tag="v1")
    granted = project_config(repo.name, repo.url, [targets[2]], ssh_key=str(settings.ssh_key))
    granted["space"] = "rivals3"
    granted["environments"] = {"dev": granted["environments"]["production"]}
    _apply(db, SYSTEM, granted)  # a superuser's grant: this key, for the rivals' own box
    marker = f"{repo.name}.pwned"
    moved = project_config(
        repo.name,
        repo.url,
        [targets[0]],
        ssh_key=str(settings.ssh_key),
        tasks={"pre_release": f"touch /srv/{marker}\n"},
    )
    moved["space"] = "rivals3"
    moved["environments"] = {"dev": moved["environments"]["production"]}
    try:
        _apply(db, rival, moved)
        d = deploys.request_deploy(db, rival, f"rivals3:{repo.name}", "dev", "v1")
        finish(db, settings, d.id)
    except FerrymanError:
        pass
    assert not targets[0].path(f"/srv/{marker}").exists(), (
        "another space's master ran a hook as root on the default space's server"
    )
    assert release_dirs(targets[0], repo.name) == []


@pytest.mark.parametrize(
    "extra",
    [
        {"post_release_delay": 3600},
        {"strategy": {"batches": 1, "between_batches": "12h"}},
        {"health_check": [{"tcp": "{HOST}:9", "retries": 100, "timeout": "10m", "interval": "1h"}]},
    ],
    ids=["post_release_delay", "between_batches", "health_check"],
)
def test_the_spaces_maximum_task_time_bounds_every_wait_a_project_can_ask_for(
    db, settings, targets, extra
):
    """``max_task_timeout`` caps ``task_timeout`` only: a project that may not hold a worker
    for more than a minute in a hook holds it for hours with a delay, a pause between
    batches, or retried health checks (each allowed up to 1 h, 10 m × 100 tries…)."""
    owner = _user(db, unique("own"), role="owner")
    spaces.update_limits(db, owner, "default", max_task_timeout=60)
    config = project_config(unique("slow"), "ssh://git@127.0.0.1/x.git", targets[:2], **extra)
    try:
        _apply(db, owner, config)
        accepted = True
    except FerrymanError:
        accepted = False
    assert not accepted, f"a project waits longer than the space's 60 s maximum with {extra}"


def test_a_build_cannot_ship_a_setuid_root_binary_to_the_hosts(
    db, sandboxed, git_host, targets, tmp_path
):
    """The build runs as an unprivileged uid, but the package stores every mode bit it
    finds (``stat.S_IMODE``: setuid and setgid too) with owner 0, and the hosts unpack it as
    root with ``--no-same-owner`` (owner: root) and, root's default, the modes as stored. A
    repository whose build script marks a copy of a shell setuid gives anyone who can run
    code on the hosts as the web user (the repository's own app) root — and the approver
    never sees it: it is not in the diff, it is made by the build."""
    import stat as st

    settings = sandboxed
    master = _user(db, unique("mia"), role="master")
    repo = Repo(git_host, tmp_path, unique("suid"))
    repo.commit(
        {"index.html": "v1\n", "build.sh": "cp /usr/bin/id ./tool\nchmod 6755 ./tool\n"},
        tag="v1",
    )
    tasks = {"post_deploy": "sh build.sh\n"}  # the usual "run the repository's build"
    _apply(db, master, project_config(repo.name, repo.url, targets[:1], tasks=tasks))
    dev = _user(db, unique("dev"), role="developer")
    result = finish(db, settings, deploys.request_deploy(db, dev, repo.name, "production", "v1").id)
    assert result["status"] == "success", result["error"]
    tools = list(targets[0].path(f"/srv/releases/{repo.name}").glob("*/tool"))
    assert tools, "the build's file was not shipped"
    info = tools[0].stat()
    assert not (info.st_uid == 0 and info.st_mode & (st.S_ISUID | st.S_ISGID)), (
        f"{tools[0]} is root's with mode {oct(st.S_IMODE(info.st_mode))} on the host"
    )
