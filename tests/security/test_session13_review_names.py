"""Session 13 review: hostile names and a hand-edited delta base, through the real transfer.

These held (they pass): kept as regressions. Names with a newline, a backslash, a carriage
return, a leading dash and bytes that are not UTF-8 travel through the manifest, the tar, the
host's listing (``commands/integrity``) and the delta; a live release whose directory was
replaced by a symlink to a directory outside the release by hand is not used as a delta base,
and nothing is written or removed through that symlink.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ferryman.services import deploy_views
from ferryman.testing.fleet import FleetHost
from tests.helpers import Repo, apply, deploy, project_config, unique

pytestmark = pytest.mark.fleet

ODD = {
    "docs/new\nline.txt": "newline\n",
    "docs/back\\slash.txt": "backslash\n",
    "docs/carriage\rreturn.txt": "cr\n",
    "docs/-dash.txt": "dash\n",
    "docs/ two  spaces .txt": "spaces\n",
    os.fsdecode(b"docs/bad\xff\xfe.txt"): "not utf-8\n",
}


def _files(root: Path) -> dict[str, bytes]:
    out = {}
    for folder, _dirs, names in os.walk(root):
        for name in names:
            full = Path(folder) / name
            rel = str(full.relative_to(root))
            if not rel.startswith(".ferryman-"):
                out[rel] = full.read_bytes()
    return out


def _log(db, deploy_id: int) -> str:
    return "\n".join(x["text"] for x in deploy_views.logs_after(db, deploy_id, 0, 5000))


def test_odd_names_and_a_hand_edited_base_never_leave_the_release(
    db, settings, git_host: FleetHost, targets, tmp_path
):
    repo = Repo(git_host, tmp_path, unique("s13names"))
    files = dict(ODD)
    repo.commit({"index.html": "v1\n", **files, "docs/sub/page.txt": "page\n"}, tag="v1")
    host = targets[0]
    apply(db, project_config(repo.name, repo.url, [host]))
    first = deploy(db, settings, repo.name, "v1")
    assert first["status"] == "success", first["error"]

    repo.commit({"index.html": "v2\n", "docs/-dash.txt": "dash 2\n"}, tag="v2")
    second = deploy(db, settings, repo.name, "v2")
    assert second["status"] == "success", second["error"]
    assert "delta against" in _log(db, second["id"])  # the odd names matched their manifest
    release = host.path(f"/srv/releases/{repo.name}/{second['release']}")
    expected = {k: v.encode() for k, v in files.items()} | {
        "index.html": b"v2\n",
        "docs/-dash.txt": b"dash 2\n",
        "docs/sub/page.txt": b"page\n",
    }
    assert _files(release) == expected

    # by hand: the live release's docs/sub becomes a link to a directory outside it
    outside = host.path("/srv/outside-" + repo.name)
    outside.mkdir()
    (outside / "page.txt").write_text("outside, untouched\n")
    sub = release / "docs" / "sub"
    (sub / "page.txt").unlink()
    sub.rmdir()
    sub.symlink_to(f"/srv/outside-{repo.name}")
    repo.commit({"index.html": "v3\n", "docs/sub/page.txt": "page 3\n"}, tag="v3")

    third = deploy(db, settings, repo.name, "v3")

    assert third["status"] == "success", third["error"]
    assert "sending the full release" in _log(db, third["id"])
    assert (outside / "page.txt").read_text() == "outside, untouched\n"
    assert sorted(p.name for p in outside.iterdir()) == ["page.txt"]
    new = host.path(f"/srv/releases/{repo.name}/{third['release']}")
    assert not (new / "docs" / "sub").is_symlink()
    assert (new / "docs" / "sub" / "page.txt").read_text() == "page 3\n"
    assert os.readlink(host.path(f"/srv/www/{repo.name}")).endswith(third["release"])
