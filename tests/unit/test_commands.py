"""Command builders return values: argv tuples with every user value quoted."""

from __future__ import annotations

from ferryman.commands import remote as cmd
from ferryman.remote.executor import wrap

LAYOUT = cmd.Layout(
    webroot="/data/nginx/web site", releases="/data/release/web", shared_dir="/data/release/shared"
)


def test_switch_renames_a_fresh_symlink_over_the_webroot():
    argv = cmd.switch(LAYOUT, "/data/release/web/20260101-000000_v1_abc", 42)
    assert argv[:2] == ("bash", "-c")
    script = argv[2]
    assert (
        "ln -sfn -- /data/release/web/20260101-000000_v1_abc "
        "'/data/nginx/.web site.tmp-42'" in script
    )
    assert "mv -fT -- '/data/nginx/.web site.tmp-42' '/data/nginx/web site'" in script
    assert "rm " not in script


def test_unpack_and_prune_are_plain_argv():
    assert cmd.unpack(LAYOUT, "r1", "gzip") == (
        "tar",
        "-z",
        "-xf",
        "-",
        "--no-same-owner",
        "-C",
        "/data/release/web/r1",
    )
    assert cmd.unpack(LAYOUT, "r1", "zstd")[:4] == ("tar", "-I", "zstd", "-xf")
    assert cmd.unpack(LAYOUT, "r1", "none")[:3] == ("tar", "-xf", "-")
    assert cmd.remove_releases(LAYOUT, ["r1", "r2"]) == (
        "rm",
        "-rf",
        "--",
        "/data/release/web/r1",
        "/data/release/web/r2",
    )


def test_delta_start_copies_the_base_with_hard_links_then_deletes_stdin_paths():
    script = cmd.start_release(LAYOUT, "r2", base="r1")[2]
    assert "cp -al -- /data/release/web/r1 /data/release/web/r2" in script
    assert "xargs -0 -r rm -rf --" in script


def test_the_early_link_goes_to_a_dot_dir_that_the_release_later_adopts():
    early = cmd.prelink(LAYOUT, "r1", 7)[2]
    assert "rm -rf -- /data/release/web/.ferryman-next-*" in early
    assert "cp -al -- /data/release/web/r1 /data/release/web/.ferryman-next-7" in early
    adopt = cmd.adopt_prelinked(LAYOUT, "r2", 7)[2]
    assert "mv -T -- /data/release/web/.ferryman-next-7 /data/release/web/r2" in adopt
    assert adopt.index("mv -T") < adopt.index("xargs -0 -r rm -rf --")
    assert cmd.remove_staging(LAYOUT, 7) == (
        "rm",
        "-rf",
        "--",
        "/data/release/web/.ferryman-next-7",
    )


def test_one_command_receives_a_release_deleting_changed_paths_before_unpacking():
    script = cmd.receive_release(
        LAYOUT, "r2", "zstd", base="r1", staged_by=7, delete=["a b.txt", "-rf", "$(x)"]
    )[2]
    lines = script.splitlines()
    assert lines[0] == "set -euo pipefail"
    assert "mv -T -- /data/release/web/.ferryman-next-7 /data/release/web/r2" in lines
    # only paths that stay inside the release reach rm (fm_inside filters the rest)
    assert "printf '%s\\0' 'a b.txt' -rf '$(x)' | fm_inside | xargs -0 -r rm -rf --" in lines
    assert lines[-1] == "exec tar -I zstd -xf - --no-same-owner -C /data/release/web/r2"
    copy = cmd.receive_release(LAYOUT, "r2", "gzip", base="r1")[2]
    assert "cp -al -- /data/release/web/r1 /data/release/web/r2" in copy
    assert "xargs -0 -r rm -rf" not in copy  # nothing to delete: no delete list
    fresh = cmd.receive_release(LAYOUT, "r2", "none")[2]
    assert "mkdir -p -- /data/release/web/r2" in fresh


def test_long_delete_lists_do_not_go_inline():
    assert cmd.inline_delete_fits(["a"] * 1000)
    assert not cmd.inline_delete_fits(["x" * 100] * 1000)


def test_the_executor_wraps_every_command_in_a_remote_timeout():
    assert wrap(("test", "-d", "/a b"), 30) == "timeout -k 5 30 test -d '/a b'"
    assert wrap(("bash", "-c", "echo $(x)"), 0.2) == "timeout -k 5 1 bash -c 'echo $(x)'"
