"""Hostile input, generated (Hypothesis): whatever the strings, the command builders keep every
value one intact word — argv tuples survive ``shlex.join``/``shlex.split``, and scripts run by
a real ``bash`` in a scratch directory act on exactly the paths they were given — and every
validator either accepts a value or raises Ferryman's own error, never anything else."""

from __future__ import annotations

import math
import os
import posixpath
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ferryman.commands import agent_script, remote, sandbox
from ferryman.config.project import parse_project
from ferryman.domain import rollout, validate
from ferryman.errors import FerrymanError

# derandomize: the same examples on every run, so CI never fails on a newly drawn input (run
# `pytest --hypothesis-seed=random` to explore; found inputs belong in a test of their own)
FAST = settings(
    deadline=None,
    max_examples=200,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
FEW = settings(deadline=None, max_examples=40, derandomize=True)  # each example runs bash

# Anything a person could type or a repository could hold in one argv element (no NUL).
anything = st.text(st.characters(blacklist_characters="\x00", codec="utf-8"), max_size=40)
# One path component of hostile text: quotes, spaces, newlines, $(), globs, leading dashes.
hostile = st.text(
    st.one_of(
        st.sampled_from(list(" \t\n'\"`$(){}[]*?;&|<>\\!#~-=%.:@,")),
        st.characters(blacklist_characters="\x00/", codec="utf-8"),
    ),
    min_size=1,
    max_size=24,
).filter(lambda s: s not in (".", "..") and len(s.encode()) < 200)


def _roundtrip(argv: tuple[str, ...] | list[str]) -> None:
    assert shlex.split(shlex.join(argv)) == list(argv)


def _bash(script: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["bash", "-c", script, "bash", *args],
        capture_output=True,
        cwd=cwd,
        timeout=20,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"},
    )


def _layout(root: str, web: str, rel: str, shared: str) -> remote.Layout:
    return remote.Layout(
        webroot=f"{root}/www/{web}",
        releases=f"{root}/releases/{rel}",
        shared_dir=f"{root}/s/{shared}",
    )


# --- argv builders -----------------------------------------------------------------------------


@FAST
@given(web=hostile, rel=hostile, shared=hostile, name=hostile, deploy_id=st.integers(0, 10**9))
def test_every_argv_builder_keeps_each_value_one_word(web, rel, shared, name, deploy_id):
    layout = _layout("/srv", web, rel, shared)
    built = [
        remote.read_manifest(layout, name),
        remote.remove_staging(layout, deploy_id),
        remote.unpack(layout, name, "gzip"),
        remote.unpack(layout, name, "zstd"),
        remote.remove_releases(layout, [name, name + "x"]),
        remote.bash(name),
    ]
    for argv in built:
        _roundtrip(argv)
    assert remote.unpack(layout, name, "none")[-1] == layout.release(name)


@FAST
@given(
    argv=st.lists(anything, min_size=1, max_size=4),
    cwd=anything,
    home=anything,
    binds=st.lists(st.tuples(anything, anything, st.booleans()), max_size=3),
    env=st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True), anything),
    stage=st.lists(st.tuples(anything, anything), max_size=2),
)
def test_the_sandbox_argv_carries_every_path_as_its_own_element(argv, cwd, home, binds, env, stage):
    spec = sandbox.Spec(
        argv=tuple(argv),
        cwd=cwd,
        home=home,
        binds=tuple(sandbox.Bind(s, d, w) for s, d, w in binds),
        env=env,
    )
    full = sandbox.command(
        "/usr/bin/bwrap", spec, sandbox.Limits(60, 1 << 30, 64), uid=1000, stage=stage
    )
    _roundtrip(full)
    assert full[-len(argv) :] == argv  # what runs inside is exactly the argv given
    for source, dest, _ in binds:
        at = [i for i, x in enumerate(full) if x == source]
        assert any(full[i + 1] == dest for i in at if i + 1 < len(full))
    for source, point in stage:
        assert any(full[i : i + 2] == [source, point] for i in range(len(full) - 1))


# --- scripts, run by bash in a scratch directory ------------------------------------------


@FEW
@given(web=hostile, rel=hostile, name=hostile, deploy_id=st.integers(0, 10**6))
def test_the_switch_script_points_the_webroot_at_exactly_the_release_named(
    web, rel, name, deploy_id
):
    with tempfile.TemporaryDirectory() as tmp:
        layout = _layout(tmp, web, rel, "s")
        Path(layout.release(name)).mkdir(parents=True)
        Path(layout.webroot_parent).mkdir(parents=True)
        result = _bash(remote.switch(layout, name, deploy_id)[2])
        assert result.returncode == 0, result.stderr
        assert os.readlink(layout.webroot) == layout.release(name)
        assert sorted(os.listdir(layout.webroot_parent)) == [web]  # no stray temp link
        if "\n" not in layout.release(name):  # its output is line-based (names have none)
            state = _bash(remote.live_state(layout)[2])
            assert state.stdout.decode().split("\n")[0] == f"link\t{layout.release(name)}"


@FEW
@given(rel=hostile, name=hostile)
def test_start_release_makes_exactly_the_directory_named_and_nothing_else(rel, name):
    with tempfile.TemporaryDirectory() as tmp:
        layout = _layout(tmp, "w", rel, "s")
        result = _bash(remote.start_release(layout, name, None)[2])
        assert result.returncode == 0, result.stderr
        assert os.listdir(layout.releases) == [name]
        assert sorted(os.listdir(tmp)) == ["releases"]
        assert os.path.isdir(layout.release(name))


@FEW
@given(name=hostile, paths=st.lists(hostile, min_size=1, max_size=3, unique=True))
def test_shared_paths_are_linked_by_exactly_their_names(name, paths):
    with tempfile.TemporaryDirectory() as tmp:
        layout = _layout(tmp, "w", "r", "s")
        Path(layout.release(name)).mkdir(parents=True)
        command = remote.link_shared(layout, name, paths)
        assert command is not None
        result = _bash(command[2])
        assert result.returncode == 0, result.stderr
        assert sorted(os.listdir(layout.release(name))) == sorted(paths)
        for rel in paths:
            link = posixpath.join(layout.release(name), rel)
            assert os.readlink(link) == posixpath.join(layout.shared_dir, rel)
        assert sorted(os.listdir(layout.shared_dir)) == sorted(paths)


@FEW
@given(name=hostile, deleted=st.lists(hostile, max_size=4, unique=True))
def test_a_received_release_removes_only_the_paths_listed(name, deleted):
    kept = "kept file"
    assume(kept not in deleted)
    with tempfile.TemporaryDirectory() as tmp:
        layout = _layout(tmp, "w", "r", "s")
        base = Path(layout.release("base"))
        base.mkdir(parents=True)
        for each in [*deleted, kept]:
            (base / each).write_text("x")
        script = remote.receive_release(layout, name, "none", base="base", delete=deleted)[2]
        empty_tar = subprocess.run(
            ["tar", "-cf", "-", "-T", "/dev/null"], capture_output=True, check=True
        ).stdout
        result = subprocess.run(
            ["bash", "-c", script], input=empty_tar, capture_output=True, timeout=20
        )
        assert result.returncode == 0, result.stderr
        assert os.listdir(layout.release(name)) == [kept]
        assert sorted(os.listdir(base)) == sorted([*deleted, kept])  # the base is untouched


@FEW
@given(
    server=anything,
    host=st.from_regex(
        r"([a-z_][a-z0-9_-]{0,8}@)?[A-Za-z0-9]([A-Za-z0-9-]{0,12}[A-Za-z0-9])?"
        r"(\.[A-Za-z0-9]{1,8}){0,3}(:[1-9][0-9]{0,3})?",
        fullmatch=True,
    ).filter(lambda h: _valid(validate.host, h)),
    token_file=anything,
)
def test_the_agent_poller_sets_its_values_exactly_as_given(server, host, token_file):
    script = agent_script.poller(server, host, token_file)
    head = script[: script.index("STATE=")]
    shown = _bash(head + 'printf "%s\\0" "$FM_SERVER" "$FM_AGENT_HOST" "$FERRYMAN_TOKEN_FILE"')
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.decode().split("\0")[:3] == [server, host, token_file]


@FEW
@given(
    value=anything,
    name=st.from_regex(r"[A-Z][A-Z0-9_]{0,8}", fullmatch=True),
    cwd=hostile,
)
def test_a_task_script_delivers_variable_values_and_its_directory_intact(value, name, cwd):
    from ferryman.domain.variables import task_script

    assume(name not in ("PATH", "LC_ALL", "HOME", "PWD", "OLDPWD", "SHELLOPTS", "BASHOPTS"))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / cwd).mkdir()
        printed = f'printf "%s\\0%s" "${{{name}}}" "$PWD"'
        shown = _bash(task_script(printed, {name: value}, cwd=f"{tmp}/{cwd}"))
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.decode().split("\0") == [value, f"{tmp}/{cwd}"]


# --- validators: accept, or raise our own error --------------------------------------------------


def _valid(check: Any, value: Any) -> bool:
    try:
        check(value)
    except FerrymanError:
        return False
    return True


VALIDATORS = [
    validate.ref,
    validate.name,
    validate.absolute_path,
    validate.relative_path,
    validate.host,
    validate.username,
    validate.label,
    validate.release,
    lambda v: validate.variables({v: v}),
    lambda v: validate.health_check_problem(v, None),
    lambda v: validate.health_check_problem(None, v),
    rollout.duration,
    lambda v: rollout.amount(v, 10, "batches"),
]


@FAST
@given(value=st.one_of(anything, st.text(max_size=300)))
def test_every_validator_accepts_or_raises_its_own_error(value):
    for check in VALIDATORS:
        _valid(check, value)  # anything but a FerrymanError propagates and fails


@FAST
@given(value=st.one_of(st.floats(), st.integers(), st.booleans(), st.none(), anything))
def test_a_duration_is_finite_between_zero_and_seven_days_or_refused(value):
    try:
        seconds = rollout.duration(value)
    except FerrymanError:
        return
    assert math.isfinite(seconds) and 0 <= seconds <= 7 * 86400


# --- the project schema ---------------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), anything, st.sampled_from(["30s", "5%"])
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(anything, inner, max_size=3)
    ),
    max_leaves=8,
)
ENV_KEYS = [
    "hosts", "user", "webroot", "releases", "shared_dir", "keep_releases", "parallel",
    "task_timeout", "command_timeout", "post_release_delay", "strategy", "health_check",
    "requires", "pull", "triggers", "sandbox", "tasks", "shared", "excludes", "labels",
    "secrets", "config_files", "mode", "queue", "compress",
]  # fmt: skip


def _base() -> dict[str, Any]:
    return {
        "project": "site",
        "repo": "ssh://git@git.example/site.git",
        "environments": {
            "production": {
                "hosts": ["web1.example"],
                "user": "deploy",
                "webroot": "/srv/www/site",
                "releases": "/srv/releases/site",
            }
        },
    }


@FAST
@given(
    changes=st.lists(
        st.tuples(st.sampled_from([*ENV_KEYS, "project", "repo", "vcs", "extra"]), values),
        min_size=1,
        max_size=4,
    )
)
def test_any_project_configuration_is_accepted_or_refused_with_a_config_error(changes):
    config = _base()
    env = config["environments"]["production"]
    for key, value in changes:
        (config if key in ("project", "repo", "vcs") else env)[key] = value
    try:
        parsed = parse_project(config)
    except FerrymanError:
        return
    dumped = parsed.model_dump(mode="json")
    for number in _numbers(dumped):
        assert math.isfinite(number), dumped


@FAST
@given(data=values)
def test_any_document_at_all_is_accepted_or_refused_with_a_config_error(data):
    try:
        parse_project(data)
    except FerrymanError:
        pass


def _numbers(value: Any) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []
