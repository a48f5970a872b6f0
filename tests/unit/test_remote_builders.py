"""Every builder of ``commands/remote.py`` by its exact output, in the style of Kamal's
command tests (the whole argv or script, not a fragment of it), and the scripts that change
hosts run by bash in a temp dir laid out like a host."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ferryman.commands import remote as cmd
from ferryman.commands.remote import Layout

LAYOUT = Layout(
    webroot="/srv/www/my site", releases="/srv/releases/site", shared_dir="/srv/shared/site"
)
SAFE = cmd.SAFE_PATHS.rstrip("\n")


def _script(argv: tuple[str, ...]) -> str:
    assert argv[:2] == ("bash", "-c")
    assert len(argv) == 3
    return argv[2]


def _bash(argv: tuple[str, ...], stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(list(argv), input=stdin, capture_output=True, timeout=30)


def _host(tmp_path: Path) -> Layout:
    (tmp_path / "www").mkdir()
    (tmp_path / "releases").mkdir()
    return Layout(
        webroot=str(tmp_path / "www" / "my site"),
        releases=str(tmp_path / "releases"),
        shared_dir=str(tmp_path / "shared"),
    )


# --- exact output --------------------------------------------------------------------------


def test_live_state_reads_the_link_and_the_version_file_it_points_at():
    assert _script(cmd.live_state(LAYOUT)) == (
        "if [ -L '/srv/www/my site' ]; then printf 'link\\t%s\\n' "
        "\"$(readlink -- '/srv/www/my site')\"; "
        "cat -- '/srv/www/my site'/.ferryman-release 2>/dev/null || true; "
        "else echo nolink; fi\n"
    )


def test_read_manifest_is_cat_of_the_release_s_manifest():
    assert cmd.read_manifest(LAYOUT, "r1") == (
        "cat",
        "--",
        "/srv/releases/site/r1/.ferryman-manifest",
    )


def test_a_first_release_is_an_empty_dir_and_stdin_is_drained():
    assert _script(cmd.start_release(LAYOUT, "r2", None)) == (
        "set -eu\n"
        "rm -rf -- /srv/releases/site/r2\n"
        "mkdir -p -- /srv/releases/site/r2\n"
        "cat >/dev/null\n"
    )


DROP_CONFIG = (
    "if [ -f /srv/releases/site/r2/.ferryman-config ] && "
    "[ ! -L /srv/releases/site/r2/.ferryman-config ]; then "
    "(cd -- /srv/releases/site/r2 && fm_inside < .ferryman-config | xargs -0 -r rm -f --); fi\n"
    "rm -f -- /srv/releases/site/r2/.ferryman-config"
)


def test_a_release_on_a_base_is_a_hard_linked_copy_without_its_config_or_listed_paths():
    assert cmd.drop_config("/srv/releases/site/r2") == DROP_CONFIG
    assert _script(cmd.start_release(LAYOUT, "r2", "r1")) == (
        f"set -eu\n{cmd.SAFE_PATHS}"
        "rm -rf -- /srv/releases/site/r2\n"
        "cp -al -- /srv/releases/site/r1 /srv/releases/site/r2\n"
        f"{DROP_CONFIG}\n"
        "cd -- /srv/releases/site/r2\n"
        "fm_inside | xargs -0 -r rm -rf --\n"
    )


def test_prelink_replaces_stale_staging_dirs_and_adopting_renames_it_into_the_release():
    assert _script(cmd.prelink(LAYOUT, "r1", 7)) == (
        "set -eu\n"
        "rm -rf -- /srv/releases/site/.ferryman-next-*\n"
        "cp -al -- /srv/releases/site/r1 /srv/releases/site/.ferryman-next-7\n"
    )
    assert _script(cmd.adopt_prelinked(LAYOUT, "r2", 7)) == (
        f"set -eu\n{cmd.SAFE_PATHS}"
        "rm -rf -- /srv/releases/site/r2\n"
        "mv -T -- /srv/releases/site/.ferryman-next-7 /srv/releases/site/r2\n"
        f"{DROP_CONFIG}\n"
        "cd -- /srv/releases/site/r2\n"
        "fm_inside | xargs -0 -r rm -rf --\n"
    )


def test_leftovers_are_the_staging_copy_and_only_a_symlink_at_the_switch_s_temp_name():
    assert _script(cmd.remove_leftovers(LAYOUT, 7)) == (
        "set -eu\n"
        "rm -rf -- /srv/releases/site/.ferryman-next-7\n"
        "if [ -L '/srv/www/.my site.tmp-7' ]; then rm -f -- '/srv/www/.my site.tmp-7'; fi\n"
    )


def test_config_files_are_untarred_with_their_modes_after_every_path_is_checked():
    assert _script(cmd.write_config(LAYOUT, "r2", ["conf/app.env"])) == (
        f"set -euo pipefail\n{SAFE}\n"
        "cd -- /srv/releases/site/r2\n"
        "fm_plain conf/app.env && fm_real_parents conf/app.env || exit 93\n"
        "if [ -L conf/app.env ]; then rm -f -- conf/app.env; fi\n"
        "fm_plain .ferryman-config && fm_real_parents .ferryman-config || exit 93\n"
        "if [ -L .ferryman-config ]; then rm -f -- .ferryman-config; fi\n"
        "exec tar -xpf - --no-same-owner --no-overwrite-dir -C /srv/releases/site/r2\n"
    )


def test_shared_paths_are_checked_first_then_seeded_once_and_linked():
    assert cmd.link_shared(LAYOUT, "r2", []) is None
    release, shared = "/srv/releases/site/r2/storage/logs", "/srv/shared/site/storage/logs"
    assert _script(cmd.link_shared(LAYOUT, "r2", ["storage/logs"]) or ()) == (
        f"set -eu\n{SAFE}\n"
        "mkdir -p -- /srv/shared/site\n"
        "(cd -- /srv/releases/site/r2 && fm_plain storage/logs && fm_real_parents storage/logs)"
        " || exit 93\n"
        "(cd -- /srv/shared/site && fm_real_parents storage/logs) || exit 93\n"
        "mkdir -p -- /srv/shared/site/storage\n"
        f"if [ ! -e {shared} ] && [ ! -L {shared} ]; then\n"
        f"  if [ -e {release} ] && [ ! -L {release} ]; then cp -a -- {release} {shared}\n"
        f"  else mkdir -p -- {shared}; fi\n"
        "fi\n"
        f"rm -rf -- {release}\n"
        "mkdir -p -- /srv/releases/site/r2/storage\n"
        f"ln -sfn -- {shared} {release}\n"
    )


def test_the_switch_refuses_what_it_must_then_renames_a_new_link_over_the_webroot():
    assert _script(cmd.switch(LAYOUT, "r2", 7)) == (
        "set -eu\n"
        "if [ -d '/srv/www/my site' ] && [ ! -L '/srv/www/my site' ]; then\n"
        "  echo 'webroot /srv/www/my site is a real directory; refusing to replace it' >&2\n"
        "  exit 90\n"
        "fi\n"
        "if [ ! -d /srv/releases/site/r2 ]; then\n"
        "  echo 'release r2 is missing' >&2; exit 91\n"
        "fi\n"
        "if [ ! -d /srv/www ]; then\n"
        "  echo 'webroot parent /srv/www does not exist' >&2\n"
        "  exit 92\n"
        "fi\n"
        "ln -sfn -- /srv/releases/site/r2 '/srv/www/.my site.tmp-7'\n"
        "mv -fT -- '/srv/www/.my site.tmp-7' '/srv/www/my site'\n"
    )


def test_undoing_a_first_switch_removes_the_link_only():
    assert _script(cmd.remove_webroot_link(LAYOUT)) == (
        "set -eu\nif [ -L '/srv/www/my site' ]; then rm -f -- '/srv/www/my site'; fi\n"
    )


def test_a_hook_is_a_fixed_runner_and_its_script_travels_on_stdin():
    assert cmd.run_task() == ("bash", "-c", cmd.TASK_RUNNER)
    assert cmd.task_input("echo hi\n") == b'rm -f -- "$0"\necho hi\n'


# --- behaviour on a host laid out in a temp dir --------------------------------------------


def test_a_switch_points_the_webroot_at_the_release_and_live_state_reads_it_back(tmp_path):
    layout = _host(tmp_path)
    assert _bash(cmd.live_state(layout)).stdout == b"nolink\n"
    for name in ("r1", "r2"):
        Path(layout.release(name)).mkdir()
        Path(layout.release(name), ".ferryman-release").write_text(f"release={name}\n")
        assert _bash(cmd.switch(layout, name, 7)).returncode == 0
    assert os.readlink(layout.webroot) == layout.release("r2")
    assert _bash(cmd.live_state(layout)).stdout.decode() == (
        f"link\t{layout.release('r2')}\nrelease=r2\n"
    )
    assert sorted(os.listdir(tmp_path / "www")) == ["my site"]  # no temp link left


@pytest.mark.parametrize(
    ("arrange", "code", "message"),
    [
        ("real_webroot", cmd.EXIT_WEBROOT_IS_DIR, "is a real directory"),
        ("no_release", cmd.EXIT_RELEASE_MISSING, "release r1 is missing"),
        ("no_parent", cmd.EXIT_PARENT_MISSING, "does not exist"),
    ],
)
def test_a_switch_that_cannot_happen_exits_with_its_own_code_and_changes_nothing(
    tmp_path, arrange, code, message
):
    layout = _host(tmp_path)
    if arrange != "no_release":
        Path(layout.release("r1")).mkdir()
    if arrange == "real_webroot":
        Path(layout.webroot).mkdir()
    if arrange == "no_parent":
        layout = Layout(str(tmp_path / "gone" / "site"), layout.releases, layout.shared_dir)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    done = _bash(cmd.switch(layout, "r1", 7))
    assert done.returncode == code
    assert message in done.stderr.decode()
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_undoing_a_first_switch_leaves_a_real_directory_alone(tmp_path):
    layout = _host(tmp_path)
    Path(layout.webroot).mkdir()
    assert _bash(cmd.remove_webroot_link(layout)).returncode == 0
    assert Path(layout.webroot).is_dir()
    os.rmdir(layout.webroot)
    os.symlink(layout.release("r1"), layout.webroot)
    assert _bash(cmd.remove_webroot_link(layout)).returncode == 0
    assert not os.path.lexists(layout.webroot)


def test_a_prelinked_copy_becomes_the_release_without_the_paths_that_changed(tmp_path):
    layout = _host(tmp_path)
    old = Path(layout.release("r1"))
    (old / "keep").mkdir(parents=True)
    (old / "keep" / "same.txt").write_text("same\n")
    (old / "changed.txt").write_text("old\n")
    (old / ".ferryman-config").write_text("conf.env\0")
    (old / "conf.env").write_text("SECRET=old\n")
    Path(layout.release(".ferryman-next-3")).mkdir()  # a stale one: removed
    assert _bash(cmd.prelink(layout, "r1", 7)).returncode == 0
    assert not Path(layout.release(".ferryman-next-3")).exists()
    done = _bash(cmd.adopt_prelinked(layout, "r2", 7), stdin=b"changed.txt\0")
    assert done.returncode == 0, done.stderr
    new = Path(layout.release("r2"))
    assert sorted(p.relative_to(new).as_posix() for p in new.rglob("*")) == [
        "keep",
        "keep/same.txt",
    ]
    assert (new / "keep" / "same.txt").stat().st_ino == (old / "keep" / "same.txt").stat().st_ino
    assert (old / "changed.txt").read_text() == "old\n"  # the old release is never changed
    assert not Path(layout.staging(7)).exists()


def test_leftovers_of_a_dead_run_go_but_a_real_file_at_the_temp_name_stays(tmp_path):
    layout = _host(tmp_path)
    Path(layout.staging(7)).mkdir()
    os.symlink(layout.release("r1"), tmp_path / "www" / ".my site.tmp-7")
    (tmp_path / "www" / ".my site.tmp-8").write_text("not ours\n")
    assert _bash(cmd.remove_leftovers(layout, 7)).returncode == 0
    assert _bash(cmd.remove_leftovers(layout, 8)).returncode == 0
    assert not Path(layout.staging(7)).exists()
    assert sorted(os.listdir(tmp_path / "www")) == [".my site.tmp-8"]


def test_a_hook_runs_from_stdin_with_an_empty_stdin_and_leaves_no_file(tmp_path):
    script = 'echo "ran in $(pwd)"; read -r line && echo "read $line" || echo "stdin empty"\n'
    done = subprocess.run(
        list(cmd.run_task()),
        input=cmd.task_input(script),
        capture_output=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)},
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == f"ran in {tmp_path}\nstdin empty\n"
    assert list(tmp_path.iterdir()) == []
