"""What `ferryman apply` says about a bad project file, before any server is asked: every
error of the file at once, with its path; a near-miss key with the key it meant; a YAML
syntax error with file, line and column; one duration syntax for every duration key. And
`ferryman schema`, the JSON Schema of the same model, which accepts what apply accepts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema_rs
import yaml

from ferryman.config.project import load_project_yaml
from tests.cli.contract import environment, run

DOCS = Path(__file__).resolve().parents[2] / "docs" / "config.md"
GOOD = {
    "project": "web",
    "repo": "ssh://git@git.example/web.git",
    "environments": {
        "production": {
            "hosts": ["web1.example"],
            "webroot": "/srv/www/web",
            "releases": "/srv/releases/web",
        }
    },
}


def _apply(tmp_path: Path, text: str) -> tuple[int, str]:
    file = tmp_path / "project.yaml"
    file.write_text(text)
    result = run(environment(tmp_path), "apply", "-f", str(file))
    return result.returncode, result.stderr


def _with(**env: object) -> str:
    data = json.loads(json.dumps(GOOD))
    data["environments"]["production"].update(env)
    return yaml.safe_dump(data)


def test_every_error_of_a_file_is_named_in_one_run_with_the_key_it_meant(tmp_path):
    text = _with(
        keep_release=3,
        hosts=["a b"],
        releases="/srv/www/web/releases",  # inside webroot: a rule across keys
        tasks={"restart": "post_release"},  # names an empty task: another
        strategy={"canari": 1},
    )
    code, err = _apply(tmp_path, text)
    assert code == 2
    lines = err.splitlines()
    assert lines[0] == "error: invalid project configuration"
    p = "environments/production"
    for wanted in (
        f"{p}/keep_release: unknown key (did you mean `keep_releases`?)",
        f"{p}/strategy/canari: unknown key (did you mean `canary`?)",
        f"{p}/hosts/0: not a host: 'a b'",
        f"{p}: webroot and releases must not contain one another",
        f"{p}/tasks: restart: post_release names the post_release task, which is empty",
    ):
        assert f"  {wanted}" in lines, (wanted, err)
    assert len(lines) == 6  # each once


def test_a_yaml_syntax_error_names_the_file_line_and_column(tmp_path):
    code, err = _apply(tmp_path, "project: web\nrepo: [ssh://x\nenvironments: {}\n")
    assert code == 2
    file = tmp_path / "project.yaml"
    assert f"error: {file} is not valid YAML" in err
    assert re.search(rf"  {re.escape(str(file))}:3:13: expected ',' or ']'", err), err


def test_every_duration_key_takes_the_same_syntax():
    text = _with(
        task_timeout="10m",
        command_timeout="90s",
        transfer_timeout="1h",
        connect_timeout="5s",
        post_release_delay="1.5s",
        health_check=[{"http": "http://localhost/", "timeout": "5s", "interval": 2}],
        strategy={"between_batches": "30s"},
    )
    env = load_project_yaml(text).environments["production"]
    assert (env.task_timeout, env.command_timeout, env.transfer_timeout) == (600, 90, 3600)
    assert (env.connect_timeout, env.post_release_delay) == (5, 1.5)
    assert env.strategy is not None, "the strategy block was dropped"
    assert env.health_check[0].timeout == 5 and env.strategy.between_batches == 30


def test_a_duration_out_of_bounds_or_malformed_is_refused_with_its_bounds(tmp_path):
    code, err = _apply(tmp_path, _with(task_timeout="2d", connect_timeout="20m"))
    assert code == 2
    assert "task_timeout: duration: not a duration: '2d' (like 30s, 5m, 1h)" in err
    assert "connect_timeout: more than 0s, at most 10m" in err


def test_schema_prints_the_json_schema_that_accepts_what_apply_accepts(tmp_path):
    result = run(environment(tmp_path), "schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["$schema"].endswith("2020-12/schema")
    validator = jsonschema_rs.validator_for(schema)
    docs = re.search(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)
    assert docs, "docs/config.md has no yaml example"
    for good in (docs.group(1), _with(task_timeout="10m", keep_releases=3)):
        data = yaml.safe_load(good)
        load_project_yaml(good)  # apply's model accepts it…
        errors = [e.message for e in validator.iter_errors(data)]
        assert not errors, errors  # …and so does the schema
    for bad in (_with(keep_release=3), _with(task_timeout="ten minutes"), _with(webroot=3)):
        assert not validator.is_valid(yaml.safe_load(bad)), bad
