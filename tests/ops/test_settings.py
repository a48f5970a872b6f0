"""Server settings: the table in docs/config.md is the settings model, values are checked."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from ferryman.config.settings import BY_NAME, VARIABLES, Settings, load_settings, value_of
from ferryman.db.session import Database
from ferryman.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
# Variables of the pull-mode agent on a host (docs/pull-mode.md), not of the server.
AGENT_SIDE = {"FERRYMAN_STATE", "FERRYMAN_TOKEN_FILE"}


def documented() -> dict[str, str]:
    """Each variable in the docs/config.md settings table → its default cell."""
    text = (ROOT / "docs" / "config.md").read_text()
    table = text.split("## Server settings (environment)", 1)[1].split("\n### ", 1)[0]
    rows: dict[str, str] = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`FERRYMAN_"):
            continue
        for name in re.findall(r"`(FERRYMAN_[A-Z_]+)`", cells[0]):
            assert name not in rows, f"{name} is in the table twice"
            rows[name] = cells[1]
    return rows


def test_the_settings_table_lists_exactly_the_variables_of_the_settings_model():
    assert set(documented()) == {v.name for v in VARIABLES}


def test_every_documented_default_is_the_default_the_server_uses():
    defaults = load_settings({"FERRYMAN_HOME": "/srv/ferryman"})
    for name, cell in documented().items():
        variable = BY_NAME[name]
        if not variable.default:
            continue  # described in words (a path under FERRYMAN_HOME, a key file, empty)
        literal = re.match(r"`([^`]*)`", cell)
        assert literal, f"{name}: the default should be written as `{variable.default}`"
        assert literal.group(1) == variable.default, name
        if variable.field:
            assert getattr(defaults, variable.field) == value_of({}, name), name


def test_every_settings_field_is_set_by_a_variable():
    fields = set(Settings.__dataclass_fields__)
    assert fields == {v.field for v in VARIABLES if v.field}


def test_every_variable_the_code_reads_is_in_the_table():
    table = set(documented())
    for path in (ROOT / "src" / "ferryman").rglob("*.py"):
        if "testing" in path.parts or path.name == "agent_script.py":
            continue  # the test fleet's own knobs; the agent's variables on a pull host
        for name in re.findall(r"\bFERRYMAN_[A-Z][A-Z_]*[A-Z]\b", path.read_text()):
            if name not in AGENT_SIDE:
                assert name in table, f"{path.relative_to(ROOT)} reads {name}: document it"


@pytest.mark.parametrize("word", ["0", "off", "OFF", "false", "no", " False "])
def test_off_and_false_and_no_turn_a_switch_off(word):
    assert load_settings({"FERRYMAN_HOME": "/x", "FERRYMAN_EMBEDDED_WORKER": word}) == (
        load_settings({"FERRYMAN_HOME": "/x", "FERRYMAN_EMBEDDED_WORKER": "0"})
    )
    assert not load_settings(
        {"FERRYMAN_HOME": "/x", "FERRYMAN_EMBEDDED_WORKER": word}
    ).embedded_worker


@pytest.mark.parametrize("word", ["1", "on", "true", "yes", "", "  "])
def test_on_true_yes_and_empty_leave_a_switch_on(word):
    assert load_settings({"FERRYMAN_HOME": "/x", "FERRYMAN_EMBEDDED_WORKER": word}).embedded_worker


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("FERRYMAN_EMBEDDED_WORKER", "maybe", "must be yes or no"),
        ("FERRYMAN_WORKER_CONCURRENCY", "0", "at least 1"),
        ("FERRYMAN_WORKER_CONCURRENCY", "four", "whole number"),
        ("FERRYMAN_WORKER_POLL", "-1", "greater than 0"),
        ("FERRYMAN_LOCK_LEASE", "nan", "greater than 0"),
        ("FERRYMAN_LOCK_LEASE", "inf", "greater than 0"),
        ("FERRYMAN_DRAIN_GRACE", "10m", "number"),
        ("FERRYMAN_PUBLIC_URL", "javascript:alert(1)", "http:// or https://"),
        ("FERRYMAN_SANDBOX", "maybe", "auto or off"),
        ("FERRYMAN_SANDBOX_MEMORY", "lots", "not a size"),
        ("FERRYMAN_SANDBOX_UID_BASE", "0", "at least 1000"),
        ("FERRYMAN_SANDBOX_STAGE", "relative/dir", "absolute path"),
        ("FERRYMAN_OUTBOUND_ALLOW", "10.0.0.0/8,intranet", "'intranet' is not a network"),
        ("FERRYMAN_EMBEDDED_WORKER", "t", "must be yes or no"),  # no abbreviations
        ("FERRYMAN_EMBEDDED_WORKER", "2", "must be yes or no"),
        ("FERRYMAN_NOTIFY_BACKOFF", "0", "greater than 0"),
        ("FERRYMAN_LOCK_WARN_MINUTES", "soon", "number"),
        ("FERRYMAN_SANDBOX_CPU", "-5", "at least 1"),
        ("FERRYMAN_SANDBOX_PROCESSES", "1.5", "whole number"),
        ("FERRYMAN_SANDBOX_UID_COUNT", "0", "at least 1"),
        ("FERRYMAN_SELF_APPROVAL", "everyone", "off or owners"),
        ("FERRYMAN_LOG_RETENTION", "forever", "must be off or a number of days"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_variable_and_what_it_wants(name, value, says):
    with pytest.raises(ConfigError) as caught:
        load_settings({"FERRYMAN_HOME": "/x", name: value})
    assert str(caught.value).startswith(f"{name}=")
    assert says in str(caught.value)


def test_a_bad_secret_token_is_named_without_repeating_it():
    with pytest.raises(ConfigError) as caught:
        load_settings({"FERRYMAN_HOME": "/x", "FERRYMAN_METRICS_TOKEN": "hunter2 x"})
    assert str(caught.value).startswith("FERRYMAN_METRICS_TOKEN: ")
    assert "at least 16 printable characters" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_a_bad_database_url_is_named_without_repeating_its_password():
    with pytest.raises(ConfigError) as caught:
        load_settings({"FERRYMAN_HOME": "/x", "FERRYMAN_DATABASE_URL": "pgsql://u:hunter2@h/db"})
    assert "FERRYMAN_DATABASE_URL" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_the_sqlite_database_is_created_readable_by_the_server_user_only(tmp_path):
    settings = load_settings({"FERRYMAN_HOME": str(tmp_path / "home")})
    db = Database(settings.database_url)
    try:
        db.upgrade()
    finally:
        db.dispose()
    for name in ("ferryman.db", "ferryman.db-wal", "ferryman.db-shm"):
        path = settings.home / name
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    assert (settings.home / "ferryman.db").exists()


def documented_options() -> dict[tuple[str, str], str]:
    """(command, option) → the variable cell, from docs/config.md's options table."""
    text = (ROOT / "docs" / "config.md").read_text()
    table = text.split("### Options of `ferryman serve`", 1)[1].split("\n### ", 1)[0]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 5 or not cells[1].startswith("`"):
            continue
        for command in (c.strip() for c in cells[0].split(",")):
            for option in re.findall(r"`([^`]+)`", cells[1]):
                rows[(command, option)] = cells[2].strip("`")
    return rows


def test_the_options_table_lists_every_option_of_the_operations_commands():
    import typer

    from ferryman.cli.main import app

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    table = documented_options()
    seen = set()
    for name in ("serve", "worker", "backup", "restore"):
        for param in commands[name].params:
            names = (
                [*param.opts, *param.secondary_opts]
                if param.opts[0].startswith("-")
                else [param.name.upper()]
            )
            for option in names:
                assert (name, option) in table, f"`ferryman {name} {option}` is not documented"
                seen.add((name, option))
                envvar = getattr(param, "envvar", None)
                if envvar:
                    assert table[(name, option)] == envvar, (name, option)
    assert set(table) == seen  # and nothing documented that is not there
