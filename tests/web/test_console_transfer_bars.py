"""The live console in a real Chromium shows the transfer's progress in bytes, a bar per host:
opened while the deploy is still queued, it learns every figure from the stream (the page
itself had none), each host's bytes only ever go forward, and every bar ends full at the
bytes its host was sent by the deploy's record. The log itself comes in pages (protocol 2),
every line once. A screenshot of the console is kept."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from ferryman.bootstrap import prepare_home
from ferryman.db.session import Database
from ferryman.services import deploy_views, deploys, spaces, users
from ferryman.services.audit import SYSTEM
from tests.conftest import set_approval
from tests.helpers import ADMIN, Repo, apply, finish, project_config, running_server, unique
from tests.web.test_browser import PASSWORD, Shots, chromium, console_lines, sign_in  # noqa: F401 - fixtures

pytestmark = pytest.mark.fleet
MIB = 1024 * 1024

WATCH = """() => {
  window.seenBytes = {};
  const note = () => document.querySelectorAll("#stages ul.bytes li").forEach((li) => {
    (window.seenBytes[li.dataset.host] ||= []).push(Number(li.dataset.sent));
  });
  new MutationObserver(note)
    .observe(document.getElementById("stages"), { childList: true, subtree: true });
}"""

ALL_FULL = """(n) => {
  const bars = [...document.querySelectorAll("#stages li[data-stage=transfer] ul.bytes progress")];
  return bars.length === n && bars.every((bar) => bar.value === bar.max);
}"""


def natural(text: str) -> list[int | str]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


@pytest.fixture
def home(settings) -> Iterator[tuple[Database, str]]:
    """The test's database and a ``ferryman serve`` on it without a worker: the deploy runs
    in the test, after the browser is watching."""
    db = prepare_home(settings)
    set_approval(db, "production", False)
    users.create_user(db, "lead", PASSWORD)
    spaces.set_member(db, SYSTEM, "default", "lead", "master")
    with running_server(settings.home, {"FERRYMAN_EMBEDDED_WORKER": "0"}) as url:
        yield db, url
    db.dispose()


def test_the_console_draws_a_bar_per_host_that_fills_with_the_bytes_sent(
    home,
    chromium,  # noqa: F811
    settings,
    git_host,
    targets,
    tmp_path,
):
    db, url = home
    repo = Repo(git_host, tmp_path, unique("bars"))
    (repo.work / "blob.bin").write_bytes(os.urandom(6 * MIB))  # incompressible
    repo.commit({"index.html": "v1\n"}, tag="v1")
    apply(db, project_config(repo.name, repo.url, targets))
    queued = deploys.request_deploy(db, ADMIN, repo.name, "production", "v1")

    page = sign_in(chromium, url, "lead")
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(f"/s/default/deploys/{queued.id}")
    page.wait_for_function("() => document.getElementById('conn').textContent === 'live'")
    assert page.locator("#stages ul.bytes").count() == 0  # nothing sent yet
    page.evaluate(WATCH)

    with ThreadPoolExecutor(1) as worker:  # Playwright's own loop holds this thread
        done = worker.submit(finish, db, settings, queued.id).result(timeout=300)
    assert done["status"] == "success"
    recorded = next(s for s in done["stages"] if s["name"] == "transfer")["bytes"]
    assert len(recorded) == len(targets)
    page.wait_for_function(ALL_FULL, arg=len(targets))

    rows = page.eval_on_selector_all(
        "#stages li[data-stage=transfer] ul.bytes li",
        """rows => rows.map(r => ({host: r.dataset.host, sent: Number(r.dataset.sent),
             total: Number(r.dataset.total), text: r.querySelector(".count").textContent,
             label: r.querySelector("progress").getAttribute("aria-label")}))""",
    )
    assert [r["host"] for r in rows] == sorted(recorded, key=natural)  # as the tabs are
    for row in rows:
        assert (row["sent"], row["total"]) == (
            recorded[row["host"]]["sent"],
            recorded[row["host"]]["total"],
        )
        assert row["sent"] == row["total"] > 6 * MIB
        assert row["text"].endswith("MB") and " of " in row["text"]
        assert row["label"] == f"Bytes sent to {row['host']}"
    seen = page.evaluate("() => window.seenBytes")
    assert set(seen) == set(recorded)
    for host, values in seen.items():
        assert values == sorted(values)  # only ever forward
        assert values[-1] == recorded[host]["total"]
    page.wait_for_selector("#console[data-ended=success]")
    # the log came in pages (protocol 2), every line once, in order
    assert sockets and all(s.endswith("&protocol=2") for s in sockets)
    stored = deploy_views.logs_after(db, queued.id, 0, 5000)
    assert console_lines(page) == [line["id"] for line in stored]
    Shots(tmp_path / "screenshots").take(page, "console-transfer-bytes")
