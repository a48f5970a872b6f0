"""The project form: every key of the YAML schema as a form field, and back.

Fields are named ``project``, ``repo``, … and ``env.<name>.<key>`` (``env.<name>.tasks.<hook>``
for hooks); ``env.<name>.enabled`` says whether the project deploys to that environment. Empty
fields are left out so the schema's defaults apply; the schema's errors
(``environments/production/webroot: …``) are mapped back to the field that caused them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from ferryman.config import yamlsafe
from ferryman.config.project import Environment, Tasks

LISTS = ("hosts", "servers", "labels", "excludes", "shared", "secrets", "config_files")
NUMBERS = (
    "keep_releases",
    "parallel",
    "task_timeout",
    "command_timeout",
    "transfer_timeout",
    "connect_timeout",
    "post_release_delay",
)
FLAGS = ("compress", "post_release_on_revert", "auto_deploy")
TEXTS = (
    "user",
    "webroot",
    "releases",
    "shared_dir",
    "ssh_key",
    "known_hosts",
    "repo_ssh_key",
    "repo_known_hosts",
    "queue",
    "mode",
)
HOOKS = tuple(Tasks.model_fields)
YAMLS = (
    "strategy",
    "health_check",
    "requires",
    "pull",
    "triggers",
    "sandbox",
)  # nested keys: a YAML text field each
# every key of an environment has a field
assert set(LISTS + NUMBERS + FLAGS + TEXTS + YAMLS + ("tasks",)) == set(Environment.model_fields)
MAX_YAML_CHARS = 64 * 1024


def load_yaml(text: str) -> Any:
    """One YAML form field, safely: no tags, bounded size and nesting (``yaml.YAMLError``
    otherwise, never ``RecursionError``)."""
    return yamlsafe.load(text, MAX_YAML_CHARS)


def defaults() -> dict[str, Any]:
    """The schema's defaults, shown as placeholders."""
    out: dict[str, Any] = {}
    for name, info in Environment.model_fields.items():
        if name in NUMBERS or name in FLAGS:
            out[name] = info.default
    return out


def to_form(config: Mapping[str, Any]) -> dict[str, Any]:
    """A stored project configuration as form values."""
    values: dict[str, Any] = {
        "project": config.get("project", ""),
        "repo": config.get("repo", ""),
        "vcs": config.get("vcs", ""),
        "description": config.get("description", ""),
    }
    for env_name, env in config.get("environments", {}).items():
        prefix = f"env.{env_name}."
        values[prefix + "enabled"] = True
        for key in LISTS:
            values[prefix + key] = "\n".join(str(v) for v in env.get(key, []))
        for key in NUMBERS + TEXTS:
            if env.get(key) is not None:
                values[prefix + key] = str(env[key])
        for key in FLAGS:
            values[prefix + key] = bool(env.get(key, Environment.model_fields[key].default))
        for hook in HOOKS:
            values[f"{prefix}tasks.{hook}"] = env.get("tasks", {}).get(hook, "")
        for key in YAMLS:
            if env.get(key):
                values[prefix + key] = yaml.safe_dump(env[key], sort_keys=False, allow_unicode=True)
    return values


def from_form(form: Mapping[str, str], environments: list[str], space: str) -> dict[str, Any]:
    """Form values → a configuration mapping for the schema to validate."""
    config: dict[str, Any] = {
        "project": form.get("project", "").strip(),
        "space": space,
        "repo": form.get("repo", "").strip(),
        "description": form.get("description", ""),
        "environments": {},
    }
    if form.get("vcs"):
        config["vcs"] = form["vcs"]
    for env_name in environments:
        prefix = f"env.{env_name}."
        if not form.get(prefix + "enabled"):
            continue
        env: dict[str, Any] = {}
        for key in LISTS:
            items = [x.strip() for x in form.get(prefix + key, "").splitlines() if x.strip()]
            if items:
                env[key] = items
        for key in NUMBERS:
            text = form.get(prefix + key, "").strip()
            if text:
                try:
                    env[key] = float(text) if "." in text else int(text)
                except ValueError:
                    env[key] = text  # the schema says what is wrong, at this field
        for key in TEXTS:
            text = form.get(prefix + key, "").strip()
            if text:
                env[key] = text
        for key in FLAGS:
            env[key] = bool(form.get(prefix + key))
        tasks = {
            hook: form.get(f"{prefix}tasks.{hook}", "").replace("\r\n", "\n")
            for hook in HOOKS
            if form.get(f"{prefix}tasks.{hook}", "").strip()
        }
        if tasks:
            env["tasks"] = tasks
        for key in YAMLS:
            text = form.get(prefix + key, "").strip()
            if text:
                try:
                    env[key] = load_yaml(text)
                except yaml.YAMLError:
                    env[key] = text  # the schema reports it at this field
        config["environments"][env_name] = env
    return config


def field_errors(lines: list[str]) -> dict[str, str]:
    """``environments/production/webroot: msg`` → ``{"env.production.webroot": "msg"}``."""
    out: dict[str, str] = {}
    for line in lines:
        path, _, message = line.partition(": ")
        parts = path.split("/")
        if parts[0] == "environments" and len(parts) >= 3:
            key = f"env.{parts[1]}.{parts[2]}"
            if parts[2] == "tasks" and len(parts) >= 4:
                key += f".{parts[3]}"
        elif parts[0] == "environments":
            key = "environments"
        else:
            key = parts[0] if parts[0] != "(top level)" else "environments"
        out.setdefault(key, message)
    return out
