"""``strategy.canary_lb: out_until_continue`` on the real fleet: the canary is switched and
checked but stays out of the load balancer until the rollout is continued; continue puts it
back in, and so do abort, rollback and cancel (after putting it back on its old release).

The load balancer is a small HTTP server of the test's on loopback; ``lb_out``/``lb_in``
(sandboxed on the deploy host, as always) tell it with curl, and it keeps who is in."""

from __future__ import annotations

import http.server
import os
import threading
import time
from collections.abc import Iterator

import pytest

from ferryman.db.models import Deploy
from ferryman.errors import ConfigError
from ferryman.services import deploys, rollouts
from tests.helpers import ADMIN, Repo, apply, deploy, finish, live, project_config, unique

pytestmark = pytest.mark.fleet
NET = os.environ.get("FERRYMAN_TEST_NET", "127.0.100")


class Balancer:
    """Who is in the pool, and every change in order."""

    def __init__(self, hosts: list[str]) -> None:
        self.members = set(hosts)
        self.events: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def change(self, what: str, host: str) -> None:
        with self.lock:
            self.events.append((what, host))
            (self.members.add if what == "in" else self.members.discard)(host)


@pytest.fixture
def balancer(targets) -> Iterator[tuple[Balancer, str]]:
    state = Balancer([h.address for h in targets[:3]])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            _, what, host = self.path.split("/")
            state.change(what, host)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer((f"{NET}.201", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state, f"http://{NET}.201:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _rollout(db, settings, git_host, hosts, tmp_path, url: str, **strategy: object):
    repo = Repo(git_host, tmp_path, unique("lb"))
    repo.commit({"index.html": "v1\n"}, tag="v1")
    config = project_config(repo.name, repo.url, hosts)
    apply(db, config)
    assert deploy(db, settings, repo.name, "v1")["status"] == "success"
    config["environments"]["production"]["strategy"] = {
        "canary": 1,
        "batches": "100%",
        "pause": "manual",
        "canary_lb": "out_until_continue",
        "lb_out": f"curl -fsS -m 5 -X POST {url}/out/$HOST",
        "lb_in": f"curl -fsS -m 5 -X POST {url}/in/$HOST",
        **strategy,
    }
    apply(db, config)
    repo.commit({"index.html": "v2\n"}, tag="v2")
    return repo, deploys.request_deploy(db, ADMIN, repo.name, "production", "v2")


def test_the_canary_stays_out_of_the_load_balancer_until_the_rollout_is_continued(
    db, settings, git_host, targets, tmp_path, balancer
):
    lb, url = balancer
    hosts = targets[:3]
    canary = hosts[0].address
    repo, requested = _rollout(db, settings, git_host, hosts, tmp_path, url)
    paused = finish(db, settings, requested.id)
    assert paused["status"] == "paused"
    assert paused["rollout"]["out_of_lb"] == [canary]
    assert lb.members == {h.address for h in hosts[1:]}  # switched, healthy, not serving
    assert live(hosts[0], repo.name) == paused["release"]

    rollouts.request(db, ADMIN, requested.id, "continue")
    done = finish(db, settings, requested.id)
    assert done["status"] == "success", done["error"]
    assert lb.members == {h.address for h in hosts}
    assert {live(h, repo.name) for h in hosts} == {done["release"]}
    assert done["rollout"]["out_of_lb"] == []
    back = lb.events.index(("in", canary))
    assert all(lb.events.index(("out", h.address)) > back for h in hosts[1:]), lb.events


@pytest.mark.parametrize("how", ["abort", "rollback"])
def test_abort_or_rollback_of_a_paused_rollout_puts_the_canary_back_in_on_its_old_release(
    db, settings, git_host, targets, tmp_path, balancer, how
):
    lb, url = balancer
    hosts = targets[:3]
    repo, requested = _rollout(db, settings, git_host, hosts, tmp_path, url)
    before = live(hosts[0], repo.name)
    assert finish(db, settings, requested.id)["status"] == "paused"
    assert hosts[0].address not in lb.members

    rollouts.request(db, ADMIN, requested.id, how)
    ended = finish(db, settings, requested.id)
    assert ended["status"] == "failed" and ended["rollout"]["state"] == "aborted"
    assert {live(h, repo.name) for h in hosts} == {before}
    assert lb.members == {h.address for h in hosts}
    assert ended["rollout"]["out_of_lb"] == []


def test_a_cancel_during_a_timed_pause_puts_the_canary_back_then_into_the_pool(
    db, settings, git_host, targets, tmp_path, balancer
):
    lb, url = balancer
    hosts = targets[:3]
    repo, requested = _rollout(db, settings, git_host, hosts, tmp_path, url, pause="60s")
    before = live(hosts[0], repo.name)
    outcome: dict = {}
    runner = threading.Thread(target=lambda: outcome.update(finish(db, settings, requested.id)))
    runner.start()
    deadline = time.monotonic() + 60
    while ("out", hosts[0].address) not in lb.events or not _held(db, requested.id):
        assert time.monotonic() < deadline and runner.is_alive(), lb.events
        time.sleep(0.2)
    assert hosts[0].address not in lb.members
    deploys.request_cancel(db, ADMIN, requested.id, "changed my mind")
    runner.join(60)
    assert outcome["status"] == "cancelled", outcome.get("error")
    assert {live(h, repo.name) for h in hosts} == {before}
    assert lb.members == {h.address for h in hosts}
    last_in = max(i for i, e in enumerate(lb.events) if e == ("in", hosts[0].address))
    assert last_in == len(lb.events) - 1  # back in only after it was switched back


def _held(db, deploy_id: int) -> bool:
    with db.read() as s:
        row = s.get(Deploy, deploy_id)
        return bool(row and (row.rollout or {}).get("out_of_lb"))


def test_out_until_continue_without_a_pause_or_lb_scripts_is_refused(targets):
    config = project_config("x", "file:///x", targets[:2])
    strategy = {"canary": 1, "canary_lb": "out_until_continue", "lb_out": "a", "lb_in": "b"}
    from ferryman.config.project import parse_project

    for broken in ({"pause": "none"}, {"lb_in": ""}, {"canary": None}):
        config["environments"]["production"]["strategy"] = {**strategy, **broken}
        with pytest.raises(ConfigError, match="canary_lb"):
            parse_project(config)
