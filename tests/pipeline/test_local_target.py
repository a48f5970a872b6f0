"""Local deploys (``hosts: [local]``): the deploy host itself as a target, without SSH.

Releases, the switch, hooks and rollback run through the local executor, in the build
sandbox, as the project's own uid, able to write only the releases dir, the webroot's parent
and the shared dir. The attacks: a hook and a committed symlink trying to write outside the
release (Ferryman's home, another directory of the machine, /tmp), and an environment whose
paths lie in Ferryman's home or are not granted to the project."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ferryman.remote.local import local_uid
from ferryman.services import projects
from ferryman.services.audit import SYSTEM
from tests.helpers import allow_local_repos, apply, deploy, rollback, unique

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="local targets run as a uid of their own")


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


class LocalRepo:
    def __init__(self, base: Path) -> None:
        self.bare = base / "repo.git"
        self.work = base / "work"
        git("init", "-q", "--bare", "-b", "master", str(self.bare), cwd=base)
        git("init", "-q", "-b", "master", str(self.work), cwd=base)
        for key, value in (("user.email", "dev@example.com"), ("user.name", "Dev")):
            git("config", key, value, cwd=self.work)
        git("remote", "add", "origin", str(self.bare), cwd=self.work)
        self.url = f"file://{self.bare}"

    def commit(self, files: dict[str, str], tag: str, links: dict[str, str] | None = None) -> None:
        for rel, content in files.items():
            (self.work / rel).write_text(content)
        for rel, target in (links or {}).items():
            (self.work / rel).symlink_to(target)
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "-m", tag, cwd=self.work)
        git("tag", tag, cwd=self.work)
        git("push", "-q", "origin", "HEAD:master", "--tags", cwd=self.work)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """Where the site lives on the deploy host; granted to the project after apply."""
    root = tmp_path / "site"
    (root / "www").mkdir(parents=True)
    (root / "releases").mkdir()
    return root


def _config(name: str, repo: LocalRepo, site: Path, **env: Any) -> dict[str, Any]:
    production = {
        "hosts": ["local"],
        "webroot": str(site / "www" / "current"),
        "releases": str(site / "releases"),
        "task_timeout": 60,
        **env,
    }
    return {"project": name, "repo": repo.url, "environments": {"production": production}}


def _grant(db, settings, name: str, *paths: Path) -> int:
    """What a superuser does once: the project's directories belong to its local uid."""
    with db.read() as s:
        project_id = projects.find_project(s, SYSTEM, name, "project.read").id
    uid = local_uid(settings, project_id)
    assert uid is not None
    for path in paths:
        os.chown(path, uid, uid)
    return uid


def _live(site: Path) -> str:
    return os.path.basename(os.readlink(site / "www" / "current"))


def test_a_local_target_deploys_runs_its_hooks_and_rolls_back_without_ssh(
    db, settings, tmp_path, site
):
    allow_local_repos(db)
    repo, name = LocalRepo(tmp_path), unique("local")
    repo.commit({"index.html": "v1\n"}, tag="v1")
    hooks = {"pre_release": "test -f index.html", "post_release": "id -u > served-by"}
    apply(db, _config(name, repo, site, tasks=hooks))
    uid = _grant(db, settings, name, site / "www", site / "releases")

    first = deploy(db, settings, name, "v1")
    assert first["status"] == "success", first.get("error")
    release = site / "releases" / _live(site)
    assert (site / "www" / "current" / "index.html").read_text() == "v1\n"
    assert release.stat().st_uid == uid and (release / "index.html").stat().st_uid == uid
    assert (release / "served-by").exists()

    repo.commit({"index.html": "v2\n"}, tag="v2")
    second = deploy(db, settings, name, "v2")
    assert second["status"] == "success", second.get("error")
    assert (site / "www" / "current" / "index.html").read_text() == "v2\n"

    back = rollback(db, settings, name)
    assert back["status"] == "success", back.get("error")
    assert _live(site) == release.name
    assert (site / "www" / "current" / "index.html").read_text() == "v1\n"


def test_a_hook_and_a_committed_symlink_cannot_write_outside_the_release(
    db, settings, tmp_path, site
):
    allow_local_repos(db)
    outside = tmp_path / "outside"
    outside.mkdir()
    marker = f"ferryman-local-{os.getpid()}-{unique('m')}"
    (tmp_path / "r").mkdir()
    repo, name = LocalRepo(tmp_path / "r"), unique("local")
    repo.commit(
        {"index.html": "v1\n"},
        tag="v1",
        links={"home": str(settings.home), "elsewhere": str(outside)},
    )
    attempts = [
        "home/pwned",  # through a committed symlink into Ferryman's home
        "elsewhere/pwned",  # through one to another directory of the machine
        f"{settings.home}/pwned",
        f"{settings.database_url.split('///')[-1]}",  # the database itself
        f"{outside}/pwned",
        f"/tmp/{marker}",
        f"{site}/pwned",  # beside the granted directories
    ]
    script = "\n".join(f"echo pwned > {a} 2>/dev/null && echo WROTE {a} || true" for a in attempts)
    script += "\nls " + str(settings.home) + " 2>/dev/null && echo SAW-HOME || true"
    apply(db, _config(name, repo, site, tasks={"post_release": script}))
    _grant(db, settings, name, site / "www", site / "releases")
    database = Path(settings.database_url.split("///")[-1])
    size = database.stat().st_size if database.exists() else None

    result = deploy(db, settings, name, "v1")
    assert result["status"] == "success", result.get("error")
    assert (site / "www" / "current" / "index.html").read_text() == "v1\n"
    assert not (settings.home / "pwned").exists()
    assert not [p for p in settings.home.rglob("pwned")]
    assert not (outside / "pwned").exists() and not (site / "pwned").exists()
    assert not Path(f"/tmp/{marker}").exists()
    if size is not None:
        assert database.read_bytes()[:16] == b"SQLite format 3\x00"
    # /tmp and the tree around the granted dirs are the sandbox's own, gone with it; home,
    # the database and other directories are not even there to be seen
    said = _all_output(db, result["id"])
    assert "SAW-HOME" not in said
    reached = [line for line in said if line.startswith("WROTE") and str(tmp_path) in line]
    assert reached == [f"WROTE {site}/pwned"], reached


def _all_output(db, deploy_id: int) -> list[str]:
    from ferryman.services import deploy_views

    return [line["text"] for line in deploy_views.logs_after(db, deploy_id, limit=5000)]


def test_a_local_target_in_ferrymans_home_or_not_granted_is_refused_before_any_write(
    db, settings, tmp_path, site
):
    allow_local_repos(db)
    repo, name = LocalRepo(tmp_path), unique("local")
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, _config(name, repo, site))  # not granted: the dirs are root's

    refused = deploy(db, settings, name, "v1")
    assert refused["status"] == "failed"
    assert "not owned by uid" in refused["error"]["message"]
    assert "install -d" in refused["error"]["message"]
    assert list((site / "releases").iterdir()) == [] and list((site / "www").iterdir()) == []

    inside = settings.home / "sites" / name
    (inside / "www").mkdir(parents=True)
    (inside / "releases").mkdir()
    other = unique("local")
    apply(db, _config(other, repo, inside))
    _grant(db, settings, other, inside / "www", inside / "releases")
    home = deploy(db, settings, other, "v1")
    assert home["status"] == "failed"
    assert "overlaps Ferryman's own" in home["error"]["message"]
    assert list((inside / "releases").iterdir()) == []


def test_a_local_target_sees_its_installed_packages_and_health_checks_reach_the_deploy_host(
    db, settings, tmp_path, site
):
    import http.server
    import threading

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        allow_local_repos(db)
        repo, name = LocalRepo(tmp_path), unique("local")
        repo.commit({"index.html": "v1\n"}, tag="v1")
        port = server.server_address[1]
        apply(
            db,
            _config(
                name,
                repo,
                site,
                requires={"commands": ["sh"], "packages": ["bash"]},
                health_check=[{"http": f"http://{{HOST}}:{port}/"}],
            ),
        )
        _grant(db, settings, name, site / "www", site / "releases")
        result = deploy(db, settings, name, "v1")
        assert result["status"] == "success", result.get("error")
        assert (site / "www" / "current" / "index.html").read_text() == "v1\n"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
