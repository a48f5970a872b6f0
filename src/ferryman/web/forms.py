"""The project form: every key of the YAML schema as a form field, and back.

Fields are named ``project``, ``repo``, … and ``env.<name>.<key>`` (``env.<name>.tasks.<hook>``
for hooks); ``env.<name>.enabled`` says whether the project deploys to that environment. Empty
fields are left out so the schema's defaults apply; the schema's errors
(``environments/production/webroot: …``) are mapped back to the field that caused them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from ferryman.config import yamlsafe
from ferryman.config.project import DURATION_PATTERN, Environment, Tasks
from ferryman.said import Said
from ferryman.web.i18n import N_

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
# numbers that are durations: shown and entered as one (``10m``, ``90s``, ``1h``), as in YAML
DURATIONS = (
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
_NESTED = (
    "strategy",
    "health_check",
    "requires",
    "pull",
    "triggers",
    "sandbox",
)  # nested keys: a YAML text field each
# every key of an environment has a field: a key this form has no better field for is a YAML
# text in the Advanced section (a scalar is a one-line YAML text)
OTHERS = tuple(
    k
    for k in Environment.model_fields
    if k not in set(LISTS + NUMBERS + FLAGS + TEXTS + _NESTED + ("tasks",))
)
YAMLS = _NESTED + OTHERS
MAX_YAML_CHARS = 64 * 1024

# The form's sections, in order: (id, title, keys, folded unless it holds a value or an error)
SECTIONS: tuple[tuple[str, str, tuple[str, ...], bool], ...] = (
    ("hosts", N_("Hosts"), ("servers", "labels", "hosts", "user", "parallel"), False),
    (
        "releases",
        N_("Releases"),
        ("webroot", "releases", "keep_releases", "shared", "shared_dir", "excludes"),
        False,
    ),
    ("hooks", N_("Hooks"), tuple(f"tasks.{h}" for h in HOOKS), False),
    ("gray", N_("Gray release"), ("strategy", "health_check", "post_release_delay"), False),
    ("pull", N_("Pull mode"), ("mode", "pull"), True),
    (
        "advanced",
        N_("Advanced"),
        (
            "secrets",
            "config_files",
            "requires",
            "triggers",
            "auto_deploy",
            "queue",
            "compress",
            "post_release_on_revert",
            "ssh_key",
            "known_hosts",
            "repo_ssh_key",
            "repo_known_hosts",
            "task_timeout",
            "command_timeout",
            "transfer_timeout",
            "connect_timeout",
            "sandbox",
            *OTHERS,
        ),
        True,
    ),
)


def load_yaml(text: str) -> Any:
    """One YAML form field, safely: no tags, bounded size and nesting (``yaml.YAMLError``
    otherwise, never ``RecursionError``)."""
    return yamlsafe.load(text, MAX_YAML_CHARS)


def spelled(seconds: Any) -> str:
    """Seconds as the project file writes a duration: ``600`` → ``10m``, ``90`` → ``90s``,
    ``7200`` → ``2h``, ``1.5`` → ``1.5s``."""
    value = float(seconds)
    if value.is_integer() and value > 0:
        whole = int(value)
        for unit, size in (("h", 3600), ("m", 60)):
            if whole % size == 0:
                return f"{whole // size}{unit}"
        return f"{whole}s"
    return f"{value:g}s"


def _takes_a_duration(node: Any) -> bool:
    if isinstance(node, dict):
        if node.get("pattern") == DURATION_PATTERN:
            return True
        return any(_takes_a_duration(v) for v in node.values())
    if isinstance(node, list):
        return any(_takes_a_duration(v) for v in node)
    return False


def _duration_keys() -> frozenset[str]:
    """Every key, at any depth of an environment, whose value is a duration (its schema
    takes ``30s``): ``between_batches``, ``unreachable_after``, a check's ``timeout``…"""
    keys: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for name, prop in (node.get("properties") or {}).items():
                if "$ref" not in str(prop) and _takes_a_duration(prop):
                    keys.add(name)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(Environment.model_json_schema())
    return frozenset(keys)


NESTED_DURATIONS = _duration_keys()


def _spelled_durations(value: Any) -> Any:
    """A stored YAML block with its durations as the file writes them (``300.0`` under
    ``unreachable_after`` → ``5m``): one duration format in the whole form."""
    if isinstance(value, dict):
        return {
            k: spelled(v)
            if k in NESTED_DURATIONS and isinstance(v, int | float) and not isinstance(v, bool)
            else _spelled_durations(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_spelled_durations(v) for v in value]
    return value


def defaults() -> dict[str, Any]:
    """The schema's defaults, shown as placeholders (durations as ``10m``)."""
    out: dict[str, Any] = {}
    for name, info in Environment.model_fields.items():
        if name in NUMBERS or name in FLAGS:
            out[name] = spelled(info.default) if name in DURATIONS else info.default
    return out


def to_form(config: Mapping[str, Any]) -> dict[str, Any]:
    """A stored project configuration as form values."""
    values: dict[str, Any] = {
        "project": config.get("project", ""),
        "repo": config.get("repo", ""),
        "vcs": config.get("vcs", ""),
        "description": config.get("description", ""),
        "display_name": config.get("display_name") or "",
    }
    for env_name, env in config.get("environments", {}).items():
        prefix = f"env.{env_name}."
        values[prefix + "enabled"] = True
        for key in LISTS:
            values[prefix + key] = "\n".join(str(v) for v in env.get(key, []))
        for key in NUMBERS + TEXTS:
            if env.get(key) is not None:
                shown = env[key]
                if key in DURATIONS and isinstance(shown, int | float):
                    shown = spelled(shown)
                values[prefix + key] = str(shown)
        for key in FLAGS:
            values[prefix + key] = bool(env.get(key, Environment.model_fields[key].default))
        for hook in HOOKS:
            values[f"{prefix}tasks.{hook}"] = env.get("tasks", {}).get(hook, "")
        for key in YAMLS:
            if env.get(key):
                shown = _spelled_durations({key: env[key]})[key]
                values[prefix + key] = yaml.safe_dump(shown, sort_keys=False, allow_unicode=True)
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
    if form.get("display_name", "").strip():
        config["display_name"] = form["display_name"]  # the schema checks and trims it
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


# What the schema's validator says, as a person would say it (the text is a msgid: the page
# says it in the viewer's language, with the values the named groups caught); anything not
# listed is shown as the schema said it. Messages the validators make with ``said`` (the
# checks of ``domain/validate.py``) reach the form as English text through pydantic: they are
# matched back to their template here.
_NAME_RULE = "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
_WHAT = r"(?P<what>[a-z][a-z ]*?) (?P<value>'.*'|\".*\")"
PLAIN = (
    (
        re.compile(r"^Input should be a valid dictionary( or instance of \w+)?$"),
        N_("write key: value lines here"),
    ),
    (re.compile(r"^Input should be a valid list$"), N_("one item a line")),
    (re.compile(r"^Input should be a valid integer.*$"), N_("a whole number")),
    (re.compile(r"^Input should be a valid number.*$"), N_("a number")),
    (re.compile(r"^Input should be a valid boolean.*$"), N_("yes or no")),
    (re.compile(r"^Input should be a valid string$"), N_("text")),
    (re.compile(r"^Input should be greater than or equal to (?P<n>\S+)$"), N_("at least %(n)s")),
    (re.compile(r"^Input should be greater than (?P<n>\S+)$"), N_("more than %(n)s")),
    (re.compile(r"^Input should be less than or equal to (?P<n>\S+)$"), N_("at most %(n)s")),
    (re.compile(r"^Input should be less than (?P<n>\S+)$"), N_("less than %(n)s")),
    (re.compile(r"^Input should be a finite number$"), N_("a finite number")),
    # a choice (``mode``, ``on_failure``): ``Input should be 'push' or 'pull'``
    (
        re.compile(r"^Input should be (?P<choices>'[^']*'(?:,? (?:or )?'[^']*')+)$"),
        N_("one of %(choices)s"),
    ),
    (
        re.compile(
            r"^(?:Dictionary|List) should have at least (?P<n>\d+) items? after validation.*$"
        ),
        N_("give at least %(n)s"),
    ),
    (
        re.compile(r"^String should have at most (?P<n>\d+) characters?$"),
        N_("at most %(n)s characters"),
    ),
    # ``requires``: the patterns of ``config.project.Requires``
    (
        re.compile(
            "^"
            + re.escape("String should match pattern '^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$'")
            + "$"
        ),
        N_(
            "a command name: 1-64 letters, digits, '.', '_', '+' or '-', starting with a "
            "letter or digit"
        ),
    ),
    (
        re.compile(
            "^"
            + re.escape("String should match pattern '^[A-Za-z0-9][A-Za-z0-9._+:-]{0,127}$'")
            + "$"
        ),
        N_(
            "a package name: 1-128 letters, digits, '.', '_', '+', ':' or '-', starting with a "
            "letter or digit"
        ),
    ),
    (
        re.compile(r"^String should match pattern '(?P<pattern>.*)'$"),
        N_("does not have the form %(pattern)s"),
    ),
    (re.compile(r"^required key missing$"), N_("required")),
    (re.compile(r"^Field required$"), N_("required")),
    (re.compile(r"^unknown key( \(did you mean `.*`\?\))?$"), N_("not a setting Ferryman knows")),
    (
        re.compile(
            r"^not a repository URL: (?P<value>.*) "
            r"\(use ssh://, https://, file://, svn:// or user@host:path\)$"
        ),
        N_(
            "not a repository URL: %(value)s "
            "(use ssh://, https://, file://, svn:// or user@host:path)"
        ),
    ),
    (
        re.compile(rf"^invalid {_WHAT}: " + re.escape(_NAME_RULE) + "$"),
        N_(
            "invalid %(what)s %(value)s: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        ),
    ),
    (
        re.compile(rf"^invalid {_WHAT}: must be an absolute path$"),
        N_("invalid %(what)s %(value)s: must be an absolute path"),
    ),
    (
        re.compile(rf"^invalid {_WHAT}: no '\.', '\.\.' or bare '/'$"),
        N_("invalid %(what)s %(value)s: no '.', '..' or bare '/'"),
    ),
    (
        re.compile(rf"^invalid {_WHAT}: must be a relative path$"),
        N_("invalid %(what)s %(value)s: must be a relative path"),
    ),
    (
        re.compile(rf"^invalid {_WHAT}: no '\.\.' and no leading '-'$"),
        N_("invalid %(what)s %(value)s: no '..' and no leading '-'"),
    ),
    (re.compile(r"^not a host: (?P<value>.*)$"), N_("not a host: %(value)s")),
    (re.compile(r"^invalid user name (?P<value>.*)$"), N_("invalid user name %(value)s")),
    (
        re.compile(r"^give hosts, servers or labels \(at least one host\)$"),
        N_("give hosts, servers or labels (at least one host)"),
    ),
    (
        re.compile(r"^webroot and releases must not contain one another$"),
        N_("webroot and releases must not contain one another"),
    ),
    # ``release_name`` (``domain/release.check_template``)
    (
        re.compile(r"^release_name: 1 to (?P<n>\d+) characters$"),
        N_("release_name: 1 to %(n)s characters"),
    ),
    (
        re.compile(r"^release_name: unknown field (?P<field>\{.*?\}) \(known: (?P<known>.*)\)$"),
        N_("release_name: unknown field %(field)s (known: %(known)s)"),
    ),
    (
        re.compile(r"^release_name: give at least one field, e\.g\. \{time\}$"),
        N_("release_name: give at least one field, e.g. {time}"),
    ),
    (
        re.compile(
            r"^release_name: (?P<value>'.*'|\".*\"): outside the fields only letters, digits, "
            r"\. _ -$"
        ),
        N_("release_name: %(value)s: outside the fields only letters, digits, . _ -"),
    ),
    (
        re.compile(
            r"^release_name: (?P<value>'.*'|\".*\") may not start with \. or - nor hold \.\.$"
        ),
        N_("release_name: %(value)s may not start with . or - nor hold .."),
    ),
    # ``config_files`` (``domain/config_files.path``)
    (
        re.compile(rf"^invalid {_WHAT}: name a file$"),
        N_("invalid %(what)s %(value)s: name a file"),
    ),
    (
        re.compile(rf"^invalid {_WHAT}: reserved by Ferryman or git$"),
        N_("invalid %(what)s %(value)s: reserved by Ferryman or git"),
    ),
)


def plain(message: str) -> str:
    """A schema message → the message a person reads: a ``Said`` with its msgid and values
    (``Said("at least %(n)s", {"n": "1"})``) that the page says in the viewer's language, or
    the message as it is."""
    for pattern, template in PLAIN:
        found = pattern.match(message.strip())
        if found:
            values: dict[str, Any] = {k: v for k, v in found.groupdict().items() if v is not None}
            if "choices" in values:  # ``'push' or 'pull'`` → the choices, as a list
                values["choices"] = re.findall(r"'[^']*'", values["choices"])
            return Said(template, values)
    return message


def field_errors(lines: list[str]) -> dict[str, str]:
    """``environments/production/webroot: msg`` → ``{"env.production.webroot": "msg"}``."""
    out: dict[str, str] = {}
    for line in lines:
        path, _, message = line.partition(": ")
        if path == "(top level)" and message.startswith("environments/"):
            path, _, message = message.partition(": ")  # a rule across environments
        parts = path.split("/")
        if parts[0] == "environments" and len(parts) >= 3:
            key = f"env.{parts[1]}.{parts[2]}"
            if parts[2] == "tasks" and len(parts) >= 4:
                key += f".{parts[3]}"
            elif parts[2] == "tasks":  # a rule of the hooks names its hook: ``restart: …``
                hook = message.split(":", 1)[0]
                key += f".{hook}" if hook in HOOKS else ""
        elif parts[0] == "environments":
            key = "environments"
        else:
            key = parts[0] if parts[0] != "(top level)" else "environments"
        out.setdefault(key, message)
    return out


def kinds() -> dict[str, str]:
    """How each field of an environment is entered: text, list, number, flag, yaml, hook or
    choice (``mode``)."""
    out = {k: "text" for k in TEXTS}
    out.update({k: "list" for k in LISTS})
    out.update({k: "number" for k in NUMBERS})
    out.update({k: "duration" for k in DURATIONS})
    out.update({k: "flag" for k in FLAGS})
    out.update({k: "yaml" for k in YAMLS})
    out.update({f"tasks.{h}": "hook" for h in HOOKS})
    out["mode"] = "choice"
    return out
