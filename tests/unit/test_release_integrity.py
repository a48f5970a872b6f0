"""A release's listing against its manifest, without a fleet: the comparison, its summary,
the reading of the listing command's output, and the command itself run by a local bash on a
tree with hostile names (it only reads)."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest

from ferryman.commands import integrity
from ferryman.commands.remote import Layout
from ferryman.domain.manifest import UNREADABLE, Manifest, compare
from ferryman.errors import RemoteError, telling_line
from ferryman.pipeline.package import build_manifest

A, B = "a" * 40, "b" * 40
MANIFEST: Manifest = {
    "index.html": ("f", 0o644, A),
    "lib": ("d", 0o755, ""),
    "lib/x.txt": ("f", 0o644, A),
    "lib/y.txt": ("f", 0o600, B),
    "lib/deep": ("d", 0o755, ""),
    "lib/deep/z.txt": ("f", 0o644, B),
    "current": ("l", 0o777, "lib"),
}


def _found(
    changes: dict[str, tuple[str, int, str] | None] | None = None,
) -> dict[str, tuple[str, int, str]]:
    """What a host lists for a release that matches ``MANIFEST``, with ``changes``."""
    found = dict(MANIFEST) | {".ferryman-manifest": ("f", 0o644, B)}
    found[".ferryman-release"] = ("f", 0o644, A)
    for path, entry in (changes or {}).items():
        if entry is None:
            found.pop(path, None)
        else:
            found[path] = entry
    return found


def test_a_release_that_matches_its_manifest_and_holds_ferrymans_own_files_is_complete():
    damage = compare(MANIFEST, _found())
    assert not damage.damaged
    assert (damage.summary(), damage.notes()) == ("", "")


def test_missing_entries_are_named_once_per_directory_with_what_was_inside_counted():
    found = _found({"lib": None})
    for path in [p for p in found if p.startswith("lib/")]:
        found.pop(path)
    damage = compare(MANIFEST, found)
    assert damage.damaged
    assert damage.missing == ("lib", "lib/deep", "lib/deep/z.txt", "lib/x.txt", "lib/y.txt")
    assert damage.summary() == "5 missing: lib (+4 inside)"


def test_content_kind_link_target_and_unreadable_files_are_changes():
    found = _found(
        {
            "index.html": ("f", 0o644, B),
            "lib/x.txt": ("d", 0o755, ""),
            "current": ("l", 0o777, "/etc"),
            "lib/y.txt": ("f", 0o600, UNREADABLE),
        }
    )
    damage = compare(MANIFEST, found)
    assert damage.changed == (
        ("current", "link target"),
        ("index.html", "content"),
        ("lib/x.txt", "file is now a directory"),
        ("lib/y.txt", "unreadable"),
    )
    assert damage.summary(cap=2) == (
        "4 changed: current (link target), index.html (content) and 2 more"
    )


def test_extra_entries_and_other_modes_are_notes_not_damage():
    found = _found({"cache": ("d", 0o755, ""), "cache/views.php": ("f", 0o644, A)})
    found["index.html"] = ("f", 0o755, A)
    found["lib/deep"] = ("d", 0o2755, "")  # a setgid parent makes setgid dirs: not a change
    damage = compare(MANIFEST, found)
    assert not damage.damaged
    assert damage.notes() == "2 extra: cache (+1 inside); 1 with another mode: index.html"
    found["index.html"] = ("f", 0o4644, A)  # a file turned setuid is one
    assert compare(MANIFEST, found).modes == ("index.html",)


def test_config_files_and_the_directories_made_for_them_are_not_extra_but_a_gone_one_is_missing():
    found = _found(
        {"conf": ("d", 0o755, ""), "conf/app.env": ("f", 0o600, B), "db.ini": ("f", 0o600, A)}
    )
    found[".ferryman-config"] = ("f", 0o600, A)
    damage = compare(MANIFEST, found, config=["conf/app.env", "db.ini"])
    assert not damage.damaged and damage.notes() == ""
    found.pop("db.ini")
    assert compare(MANIFEST, found, config=["conf/app.env", "db.ini"]).summary() == (
        "1 missing: db.ini"
    )


def test_a_config_list_naming_paths_outside_the_release_counts_for_nothing():
    damage = compare(MANIFEST, _found(), config=["/srv/outside/keep", "../../etc/passwd", "a//b"])
    assert not damage.damaged and damage.notes() == ""


def test_a_shared_path_linked_to_the_shared_dir_stands_for_what_the_manifest_had_there():
    found = _found({"lib": ("l", 0o777, "/srv/shared/app/lib")})
    for path in [p for p in found if p.startswith("lib/")]:
        found.pop(path)
    found["data"] = ("d", 0o755, "")
    found["data/uploads"] = ("l", 0o777, "/srv/shared/app/data/uploads")
    damage = compare(MANIFEST, found, shared_dir="/srv/shared/app")
    assert not damage.damaged and damage.notes() == ""
    # a link elsewhere is not a shared path: the directory changed
    found["lib"] = ("l", 0o777, "/srv/elsewhere/lib")
    assert compare(MANIFEST, found, shared_dir="/srv/shared/app").summary() == (
        "1 changed: lib (directory is now a symlink); 4 missing inside lib"
    )


def _output(*fields: bytes) -> str:
    return base64.b64encode(b"\0".join(fields)).decode()


def test_the_listing_output_reads_back_with_escaped_names_and_link_targets_holding_anything():
    digests = (
        f"{A}  plain name.txt\n\\{B}  new\\nline\\\\back\\rslash\n{A}  .ferryman-manifest\n"
    ).encode()
    out = _output(
        b"f 644 plain name.txt//",
        b"f 4755 new\nline\\back\rslash//",
        b"l 777 link//=digests//x",
        b"d 755 dir//",
        b"f 644 .ferryman-manifest//",
        b"f 600 unreadable//",
        b"=digests",
        digests,
        b"=config",
        b"conf/app.env\n",
        b"=end",
        b"",
    )
    listing = integrity.parse(out)
    assert listing.present and listing.config == ("conf/app.env",)
    assert listing.manifest_digest == A
    assert dict(listing.entries) == {
        "plain name.txt": ("f", 0o644, A),
        "new\nline\\back\rslash": ("f", 0o4755, B),
        "link": ("l", 0o777, "=digests//x"),
        "dir": ("d", 0o755, ""),
        ".ferryman-manifest": ("f", 0o644, A),
        "unreadable": ("f", 0o600, UNREADABLE),
    }


def test_a_listing_cut_short_is_an_error_and_no_release_dir_reads_as_absent():
    full = _output(b"d 755 dir//", b"=digests", b"", b"=config", b"", b"=end", b"")
    assert integrity.parse(full).present
    for cut in (_output(b"d 755 dir//", b"=digests", b""), _output(b"d 755 dir//"), "@@"):
        with pytest.raises(ValueError):
            integrity.parse(cut)
    assert integrity.parse(_output(b"=norelease", b"")) == integrity.Listing(present=False)


def test_the_listing_command_run_by_bash_reads_exactly_what_the_manifest_of_the_tree_says(
    tmp_path: Path,
):
    release = tmp_path / "releases" / "r 1"
    (release / "sub dir" / "中文").mkdir(parents=True)
    names = ["a b", "new\nline", "tab\there", "back\\slash", "cr\rx", "-dash", "sub dir/中文/页"]
    for i, name in enumerate(names):
        (release / name).write_text(f"{i}\n")
    (release / os.fsdecode(b"bad\xff")).write_text("not utf-8\n")
    os.symlink("/etc/passwd", release / "passwd")
    os.symlink("..", release / "up")
    layout = Layout(str(tmp_path / "www"), str(tmp_path / "releases"), str(tmp_path / "shared"))
    argv = integrity.listing(layout, "r 1")
    assert argv[:5] == ("nice", "-n", "0", "bash", "-c") and f"'{release}'" in argv[5]

    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    listing = integrity.parse(out)
    manifest = build_manifest(release, [])
    assert dict(listing.entries) == manifest
    assert not compare(manifest, listing.entries).damaged
    missing = subprocess.run(
        integrity.listing(layout, "gone"), capture_output=True, text=True, check=True
    )
    assert not integrity.parse(missing.stdout).present


def test_a_remote_error_names_a_full_disk_even_when_a_generic_line_follows_it():
    tail = (
        "tar: big.txt: Cannot write: No space left on device\n"
        "tar: other: Cannot open: Permission denied\n"
        "tar: Exiting with failure status due to previous errors\n"
    )
    assert telling_line(tail) == "tar: big.txt: Cannot write: No space left on device"
    assert (
        telling_line(
            "tar: x: Permission denied\ntar: Exiting with failure status due to previous errors\n"
        )
        == "tar: x: Permission denied"
    )
    assert telling_line("one\ntwo\n") == "two"
    error = RemoteError(
        "command failed", host="h1", stage="transfer", exit_status=2, stderr_tail=tail
    )
    assert str(error) == (
        "h1 [transfer]: command failed (exit 2): tar: big.txt: Cannot write: "
        "No space left on device"
    )
