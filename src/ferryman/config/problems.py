"""What is wrong with a project file, said so a person can fix all of it in one go: every
error names its path, an unknown key names the known key it most looks like, and the rules
across keys (an environment with no hosts, webroot inside releases) are checked even when
other keys of the file fail, instead of only after those are fixed."""

from __future__ import annotations

import difflib
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from ferryman.said import Said, said


def line(root: type[BaseModel], err: Any) -> str:
    """``path/to/key: message`` for one pydantic error of a ``root`` model."""
    loc = tuple(err["loc"])
    path = "/".join(str(p) for p in loc) or "(top level)"
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(loc[-1]), known_keys(root, loc[:-1]), n=1)
        message = (
            said("unknown key (did you mean `%(key)s`?)", key=close[0])
            if close
            else said("unknown key")
        )
    elif err["type"] == "missing":
        message = said("required key missing")
    if isinstance(message, Said):  # the same line, its message said (a wrapper, not a msgid)
        return Said("%(path)s: %(message)s", {"path": path, "message": message})
    return f"{path}: {message}"


def known_keys(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys the model at ``loc`` (a path under ``root``) accepts; none when that is not
    a model."""
    node: Any = root
    for part in loc:
        node = _child(node, part)
        if node is None:
            return []
    model = _model(_unwrap(node))
    return list(model.model_fields) if model is not None else []


def _child(node: Any, part: Any) -> Any:
    node = _unwrap(node)
    model = _model(node)
    if model is not None:
        field = model.model_fields.get(str(part))
        return field.annotation if field is not None else None
    origin = get_origin(node)
    if origin is dict:
        return get_args(node)[1]
    if origin is list:
        return get_args(node)[0]
    return None


def _unwrap(node: Any) -> Any:
    """``Annotated[X, …]`` → X; ``X | None`` → X (the one model of a union, if any)."""
    while get_origin(node) is Annotated:
        node = get_args(node)[0]
    if get_origin(node) in (Union, types.UnionType):
        choices = [a for a in get_args(node) if a is not type(None)]
        models = [a for a in choices if _model(a) is not None]
        return models[0] if models else (choices[0] if len(choices) == 1 else None)
    return node


def _model(node: Any) -> type[BaseModel] | None:
    node = node if get_origin(node) is not Annotated else get_args(node)[0]
    return node if isinstance(node, type) and issubclass(node, BaseModel) else None


def across_keys(data: Any) -> list[str]:
    """The rules across keys (``config/project.py``), checked on the raw file: pydantic runs
    them only once every key of their environment is valid."""
    from ferryman.config.project import hosts_problem, paths_problem, restart_problem

    if not isinstance(data, dict) or not isinstance(data.get("environments"), dict):
        return []
    lines = []
    for name, env in data["environments"].items():
        if not isinstance(env, dict):
            continue
        where = f"environments/{name}"
        problem = hosts_problem(env.get("hosts"), env.get("servers"), env.get("labels"))
        if problem:
            lines.append(f"{where}: {problem}")
        web, rel = env.get("webroot"), env.get("releases")
        if isinstance(web, str) and isinstance(rel, str) and web[:1] == rel[:1] == "/":
            problem = paths_problem(web.rstrip("/"), rel.rstrip("/"))
            if problem:
                lines.append(f"{where}: {problem}")
        tasks = env.get("tasks")
        if isinstance(tasks, dict):
            problem = restart_problem(tasks.get("restart", ""), tasks.get("post_release"))
            if problem:
                lines.append(f"{where}/tasks: {problem}")
    return lines


# Hooks by where they run, for the notes on Walle forms (``domain.variables``).
_TARGET_HOOKS = ("pre_release", "post_release", "restart")
_DEPLOY_HOST_HOOKS = ("pre_deploy", "post_deploy")


def hook_notes(env: Any) -> list[str]:
    """Notes (not errors) on hooks of an environment (``config.project.Environment``) that
    use a Walle ``{NAME}`` form whose meaning differs from the ``${NAME}`` variable of the
    same name: correct for a hook copied from Walle, a surprise for one written for Ferryman.
    Detection shows them beside its checks."""
    from ferryman.domain.variables import walle_forms

    notes = []
    for hook in _DEPLOY_HOST_HOOKS + _TARGET_HOOKS:
        script = getattr(env.tasks, hook, "") or ""
        forms = walle_forms(script)
        on_target = hook in _TARGET_HOOKS
        if "VERSION" in forms:
            notes.append(
                f"tasks/{hook}: {{VERSION}} is the release directory ($RELEASE, as in Walle), "
                "not the release name ($VERSION)"
            )
        if "WORKSPACE" in forms and on_target:
            notes.append(
                f"tasks/{hook}: {{WORKSPACE}} on a target is the directory of the release "
                "being deployed ($RELEASE, as in Walle), not the deploy host's checkout "
                "($WORKSPACE)"
            )
    return notes
