"""The package's tar members: made from each path's lstat, owned by root, rwx bits only."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from ferryman.errors import InternalError
from ferryman.pipeline.package import build_manifest, write_package


def _members(tree: Path, out: Path) -> dict[str, tarfile.TarInfo]:
    manifest = build_manifest(tree, [])
    package = out / "package.tar"
    write_package(tree, sorted(manifest), manifest, "v\n", package, "none")
    with tarfile.open(package) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_members_are_owned_by_root_without_names_and_keep_only_their_rwx_bits(tmp_path):
    tree = tmp_path / "tree"
    (tree / "bin").mkdir(parents=True)
    tool = tree / "bin" / "tool"
    tool.write_bytes(b"#!/bin/sh\n")
    tool.chmod(0o6755)  # setuid and setgid: never shipped
    os.chown(tool, 12345, 23456)
    (tree / "bin").chmod(0o1777)  # sticky: never shipped
    members = _members(tree, tmp_path)
    for name in ("bin", "bin/tool"):
        m = members[name]
        assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", "")
    assert members["bin/tool"].mode == 0o755
    assert members["bin/tool"].isreg() and members["bin/tool"].size == len(b"#!/bin/sh\n")
    assert members["bin"].isdir() and members["bin"].mode == 0o777


def test_a_member_with_a_short_name_has_one_header_and_whole_second_times(tmp_path):
    # a fractional mtime made tarfile write an extended (pax) header before every member:
    # twice the headers to build and to unpack, for sub-second times nobody reads
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "app.txt").write_text("x")
    os.utime(tree / "app.txt", ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
    member = _members(tree, tmp_path)["app.txt"]
    assert member.pax_headers == {}
    assert member.mtime == 1_700_000_000


def test_a_symlink_is_a_symlink_member_with_its_target_and_is_never_followed(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tmp_path / "secret").write_text("outside the tree")
    (tree / "data").symlink_to(tmp_path / "secret")
    (tree / "rel").symlink_to("data")
    members = _members(tree, tmp_path)
    assert members["data"].issym() and members["data"].linkname == str(tmp_path / "secret")
    assert members["rel"].issym() and members["rel"].linkname == "data"
    assert members["data"].size == 0


def test_a_file_that_became_a_fifo_after_the_manifest_is_refused_by_name(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "app.txt").write_text("x")
    manifest = build_manifest(tree, [])
    (tree / "app.txt").unlink()
    os.mkfifo(tree / "app.txt")
    with pytest.raises(InternalError, match=r"app\.txt: no longer a file"):
        write_package(tree, sorted(manifest), manifest, "v\n", tmp_path / "p.tar", "none")


def test_a_file_swapped_for_a_symlink_after_the_manifest_ships_the_link_not_its_target(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "app.txt").write_text("x")
    manifest = build_manifest(tree, [])
    (tmp_path / "secret").write_text("outside the tree")
    (tree / "app.txt").unlink()
    (tree / "app.txt").symlink_to(tmp_path / "secret")
    write_package(tree, sorted(manifest), manifest, "v\n", tmp_path / "p.tar", "none")
    with tarfile.open(tmp_path / "p.tar") as tar:
        member = tar.getmember("app.txt")
        assert member.issym()
        assert b"outside the tree" not in (tmp_path / "p.tar").read_bytes()
