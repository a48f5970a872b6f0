"""Session 13 fault review: a worker SIGKILLed during the ``migrations:`` listing.

The listing runs after every host switched and ran ``post_release`` (which migrates the
database), before ``cleanup``. A run that fails once hosts had switched puts them back and
still lists what the new release's code applied (``migrations.record_after_failure``), so a
later rollback knows which irreversible migrations it would cross. A run killed there is put
in order by another worker (``pipeline/recover.py``): every host back on the release before
(the record shows no ``cleanup``) — and nothing is listed. The newest listing is then the old
release's, which does not hold the migration the dead run's ``post_release`` applied, so the
rollback guard (``services/migrations.guard_rollback``) let a rollback across an
irreversible migration through unforced. The recovery now lists them from a host that still
holds the new release before removing it (``pipeline/recover._list_migrations``).
"""

from __future__ import annotations

import signal

import pytest
from sqlalchemy import select

from ferryman.db.models import ReleaseMigrations
from ferryman.errors import Conflict
from ferryman.services import deploy_views, deploys
from tests.helpers import ADMIN, Repo, apply, deploy, live, project_config, unique
from tests.jobs.claiming import rescue
from tests.jobs.test_worker_loss import LEASE, _wait, _worker

pytestmark = pytest.mark.fleet

MIGRATE = """mkdir -p /srv/appdb
touch /srv/appdb/{PROJECT}
while read -r line; do
  grep -qxF -- "$line" /srv/appdb/{PROJECT} || printf '%s\\n' "$line" >> /srv/appdb/{PROJECT}
done < migrations.txt
"""
# the listing: what the host's "database" holds; v2's release takes its time (a slow
# ``php artisan migrate:status``), and says when it started
# (only while the test holds it: the recovery's own listing answers at once)
LIST = (
    "cat /srv/appdb/{PROJECT}\n"
    "if [ -f slow ] && [ -e /srv/{PROJECT}.hold ]; then\n"
    "  touch /srv/{PROJECT}.listing; sleep 50\n"
    "fi\n"
)
FIRST = "20240101_create_users reversible\n"
SECOND = FIRST + "20240102_drop_legacy irreversible\n"


def _config(repo: Repo, hosts) -> dict:
    config = project_config(repo.name, repo.url, hosts)
    env = config["environments"]["production"]
    env["tasks"] = {"post_release": MIGRATE}
    env["migrations"] = {"command": LIST, "timeout": "60s"}
    return config


def test_a_deploy_killed_in_its_migrations_listing_leaves_the_rollback_guard_knowing_them(
    db, settings, git_host, targets, tmp_path
):
    hosts = targets[:2]
    repo = Repo(git_host, tmp_path, unique("migkill"))
    repo.commit({"index.html": "v0\n", "migrations.txt": ""}, tag="v0")
    apply(db, _config(repo, hosts))
    v0 = deploy(db, settings, repo.name, "v0")
    assert v0["status"] == "success", v0["error"]
    repo.commit({"index.html": "v1\n", "migrations.txt": FIRST}, tag="v1")
    v1 = deploy(db, settings, repo.name, "v1")
    assert v1["status"] == "success", v1["error"]
    repo.commit({"index.html": "v2\n", "migrations.txt": SECOND, "slow": ""}, tag="v2")
    for host in hosts:
        host.path(f"/srv/{repo.name}.hold").write_text("")
    doomed = deploys.request_deploy(db, ADMIN, repo.name, "production", "v2")
    victim = _worker(settings)
    try:
        markers = [h.path(f"/srv/{repo.name}.listing") for h in hosts]
        _wait(lambda: any(m.exists() for m in markers), 90, "v2's migrations listing")
        # the switch is on record (a kill before that flush: test_session13_faults_migrations_lag)
        _wait(
            lambda: any(st["name"] == "switch" for st in deploy_views.get(db, doomed.id)["stages"]),
            10,
            "the switch on record",
        )
        victim.send_signal(signal.SIGKILL)  # post_release migrated everywhere; listing runs
        victim.wait(10)
        for host in hosts:
            host.path(f"/srv/{repo.name}.hold").unlink()
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait(10)
    rescue(db, settings, doomed.id, float(LEASE))

    result = deploy_views.get(db, doomed.id)
    assert result["status"] == "failed" and result["error"]["code"] == "worker_lost"
    assert {live(h, repo.name) for h in hosts} == {v1["release"]}  # put back
    # the database has the irreversible migration v2's post_release applied
    for host in hosts:
        assert (
            "20240102_drop_legacy irreversible" in host.path(f"/srv/appdb/{repo.name}").read_text()
        )
    # going back to v0 crosses the irreversible 20240102_drop_legacy: refused unless forced
    with pytest.raises(Conflict) as refused:
        deploys.request_rollback(db, ADMIN, repo.name, "production")
    assert "20240102_drop_legacy" in refused.value.message

    with db.read() as s:
        listed = [
            [m[0] for m in row.applied]
            for row in s.scalars(
                select(ReleaseMigrations)
                .where(ReleaseMigrations.project_id == doomed.project_id)
                .order_by(ReleaseMigrations.id)
            )
        ]
    # what v2's code applied is on record (as a run that failed after its switch records it)
    assert any("20240102_drop_legacy" in versions for versions in listed), listed
