"""The project schema: the issue's example accepted as written, errors named by path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ferryman.config.project import load_project_yaml, parse_project
from ferryman.errors import ConfigError

EXAMPLE = """
project: website
repo: ssh://git@10.0.0.12/group/website.git   # or svn://, https://, file://
environments:
  production:
    hosts: ["10.0.0.13", "10.0.0.14:2222", "www@10.0.0.15"]
    user: www                       # default remote user
    ssh_key: /etc/ferryman/id_ed25519   # optional; default: the server's own key
    known_hosts: /etc/ferryman/known_hosts  # optional; default: the server's own file
    webroot: /data/nginx/website    # a symlink Ferryman manages; its parent must exist
    releases: /data/release/website # where release directories live
    keep_releases: 5
    excludes: [".git", "*.md"]
    shared: ["storage/logs", ".env"]   # linked from <releases>/../shared into every release
    tasks:
      pre_deploy: |                 # on the deploy host, in the workspace, before checkout
        echo preparing
      post_deploy: |                # on the deploy host, in the checked-out tree (build here)
        composer install --no-dev
      pre_release: |                # on every target, in the new release dir, before the switch
        php artisan config:cache
      post_release: |               # on every target, after the switch
        sudo systemctl reload php-fpm
    post_release_delay: 0           # seconds between hosts for post_release (rolling restarts)
    parallel: 50                    # max hosts worked on at once
"""


def test_the_documented_example_is_accepted_exactly_as_written():
    config = load_project_yaml(EXAMPLE)
    env = config.environment("production")
    assert [str(h) for h in env.hosts] == ["10.0.0.13", "10.0.0.14:2222", "www@10.0.0.15"]
    assert env.user_for(env.hosts[2]) == "www" and env.hosts[1].port == 2222
    assert env.tasks.post_release.strip() == "sudo systemctl reload php-fpm"
    assert config.vcs_kind == "git"


def test_the_commented_example_in_docs_config_md_loads():
    text = (Path(__file__).parents[2] / "docs" / "config.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert block, "docs/config.md has no yaml example"
    config = load_project_yaml(block.group(1))
    assert config.environments


def _errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_project_yaml(text)
    return info.value.errors


def test_every_error_names_its_path():
    text = EXAMPLE.replace('"www@10.0.0.15"]', '"a b"]').replace("parallel: 50", "parallel: 0")
    text = text.replace("keep_releases: 5", "keep_releases: 5\n    colour: blue")
    errors = _errors(text)
    assert "environments/production/hosts/2: not a host: 'a b'" in errors
    assert "environments/production/colour: unknown key" in errors
    assert any(e.startswith("environments/production/parallel: ") for e in errors)


def test_missing_keys_relative_paths_and_nested_webroots_are_refused():
    errors = _errors(
        "project: x\nrepo: ssh://h/r.git\nenvironments:\n  prod:\n"
        "    hosts: [h1]\n    webroot: relative\n    releases: /srv/r\n"
    )
    assert any(e.startswith("environments/prod/webroot: invalid path") for e in errors)
    errors = _errors(
        "project: x\nrepo: ssh://h/r.git\nenvironments:\n  prod:\n"
        "    hosts: [h1]\n    webroot: /srv/r/www\n    releases: /srv/r\n"
    )
    assert any("must not contain one another" in e for e in errors)
    assert _errors("project: x\nrepo: ssh://h/r.git\n") == ["environments: required key missing"]


def test_repos_that_could_be_options_are_refused():
    errors = _errors("project: x\nrepo: --upload-pack=touch\nenvironments: {}\n")
    assert errors[0].startswith("repo: not a repository URL")


def test_yaml_syntax_errors_are_config_errors():
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_project_yaml("project: [unclosed\n")


def test_a_deeply_nested_project_file_is_a_config_error_not_a_crash():
    from ferryman.config.project import load_project_yaml

    with pytest.raises(ConfigError, match="not valid YAML"):
        load_project_yaml("project: x\nrepo: " + "[" * 5000)


def test_config_errors_quote_the_bad_value_instead_of_a_template_placeholder():
    from ferryman.errors import ConfigError

    for bad, says in (
        ({"repo": "-oProxyCommand=x"}, "not a repository URL: '-oProxyCommand=x'"),
        ({"environments": {"p": {"hosts": ["a", "a"]}}}, "host listed twice: 'a'"),
    ):
        config = {"project": "p", "repo": "ssh://git@127.0.0.9/r.git", "environments": {}}
        config |= bad
        with pytest.raises(ConfigError) as refused:
            parse_project(config)
        assert says in str(refused.value) and "!r}" not in str(refused.value)
