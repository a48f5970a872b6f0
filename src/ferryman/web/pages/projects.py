"""Projects: list, the form (every YAML key), detail with detection, copy and YAML export,
the releases page with rollback to any kept release, and config files."""

from __future__ import annotations

from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from ferryman.config.project import parse_project
from ferryman.errors import ConfigError, FerrymanError
from ferryman.http_deps import DB, wake_worker
from ferryman.services import (
    config_files,
    config_views,
    deploy_views,
    deploys,
    inventory,
    migrations,
    project_deletion,
    projects,
    rollouts,
    watch_views,
)
from ferryman.services.authz import project_role
from ferryman.web import forms
from ferryman.web.render import page, redirect
from ferryman.web.session import Viewer, check_csrf, signed_in

router = APIRouter()
Csrf = Annotated[str, Form()]
Text = Annotated[str, Form()]


def _ref(space: str, name: str) -> str:
    return f"{space}:{name}"


def _project_role(db: Any, web: Viewer, space: str, name: str) -> Any:
    with db.read() as s:
        found = projects.find_project(s, web.actor, _ref(space, name), "project.read")
        return found, project_role(s, web.actor, found)


@router.get("/s/{space}/projects", response_class=HTMLResponse)
def project_list(request: Request, space: str, db: DB) -> HTMLResponse:
    web = signed_in(request, db, space)
    return page(
        request, web, "projects.html", projects=projects.list_projects(db, web.actor, space)
    )


def _form(
    request: Request,
    web: Viewer,
    db: Any,
    space: str,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    editing: str = "",
    status: int = 200,
) -> HTMLResponse:
    envs = [e["name"] for e in inventory.list_environments(db, web.actor, space)]
    return page(
        request,
        web,
        "project_form.html",
        status=status,
        values=values,
        errors=errors or {},
        environments=envs,
        editing=editing,
        defaults=forms.defaults(),
        lists=forms.LISTS,
        numbers=forms.NUMBERS,
        flags=forms.FLAGS,
        texts=forms.TEXTS,
        hooks=forms.HOOKS,
        yamls=forms.YAMLS,
        sections=forms.SECTIONS,
        kinds=forms.kinds(),
    )


@router.get("/s/{space}/projects/new", response_class=HTMLResponse)
def new_project(request: Request, space: str, db: DB) -> HTMLResponse:
    web = signed_in(request, db, space)
    return _form(request, web, db, space, {})


@router.get("/s/{space}/projects/{name}/edit", response_class=HTMLResponse)
def edit_project(request: Request, space: str, name: str, db: DB) -> HTMLResponse:
    web = signed_in(request, db, space)
    found, _role = _project_role(db, web, space, name)
    return _form(request, web, db, space, forms.to_form(found.config), editing=name)


@router.post("/s/{space}/projects", response_model=None)
async def save_project(request: Request, space: str, db: DB) -> Response:
    """Create or change a project from the form; schema errors are shown at their fields."""
    import asyncio

    web = await asyncio.to_thread(signed_in, request, db, space)
    form = {k: str(v) for k, v in (await request.form()).items()}
    check_csrf(web, form.get("csrf"))
    envs = [
        e["name"]
        for e in await asyncio.to_thread(inventory.list_environments, db, web.actor, space)
    ]
    editing = form.get("editing", "")
    data = forms.from_form(form, envs, space)
    if editing and data["project"] != editing:
        return _form(
            request,
            web,
            db,
            space,
            form,
            {"project": web._("A project cannot be renamed; copy it instead.")},
            editing,
            422,
        )
    try:
        config = parse_project(data)
        await asyncio.to_thread(projects.apply_project, db, web.actor, config)
    except ConfigError as exc:
        # a service's ``said`` line is said first: its translation keeps the line's
        # ``environments/<name>: `` path, which places it at its field
        lines = [web.say(line) for line in exc.errors]
        errors = {
            key: web.say(forms.plain(message)) for key, message in forms.field_errors(lines).items()
        } or {"environments": web.say(exc.message)}
        return _form(request, web, db, space, form, errors, editing, 422)
    except FerrymanError as exc:
        if exc.http_status in (401, 403, 404):
            raise
        refused = {"project": web.say(exc.message)}
        return _form(request, web, db, space, form, refused, editing, exc.http_status)
    return redirect(
        request,
        f"/s/{space}/projects/{config.project}",
        web._("Project %(name)s saved.", name=config.project),
    )


@router.get("/s/{space}/projects/{name}", response_class=HTMLResponse)
def project_detail(request: Request, space: str, name: str, db: DB) -> HTMLResponse:
    web = signed_in(request, db, space)
    found, role = _project_role(db, web, space, name)
    return page(
        request,
        web,
        "project.html",
        project=found,
        config=found.config,
        role=role,
        spaces=[s for s in web.spaces],
        watches=watch_views.newest_by_env(db, found.id),
    )


@router.get("/s/{space}/projects/{name}/export.yaml")
def export_project(request: Request, space: str, name: str, db: DB) -> PlainTextResponse:
    web = signed_in(request, db, space)
    found, _role = _project_role(db, web, space, name)
    text = yaml.safe_dump(dict(found.config), sort_keys=False, allow_unicode=True)
    return PlainTextResponse(
        text,
        media_type="application/x-yaml",
        headers={"Content-Disposition": f'attachment; filename="{found.name}.yaml"'},
    )


@router.post("/s/{space}/projects/{name}/copy", response_model=None)
def copy_project(
    request: Request,
    space: str,
    name: str,
    db: DB,
    csrf: Csrf,
    new_name: Text,
    to_space: Annotated[str, Form()] = "",
) -> Response:
    web = signed_in(request, db, space)
    check_csrf(web, csrf)
    target = to_space or space
    copied = projects.copy_project(db, web.actor, _ref(space, name), new_name.strip(), target)
    return redirect(
        request,
        f"/s/{target}/projects/{copied.name}",
        web._("Copied to %(name)s.", name=copied.name),
    )


@router.post("/s/{space}/projects/{name}/delete", response_model=None)
def delete_project(request: Request, space: str, name: str, db: DB, csrf: Csrf) -> Response:
    """Delete the project (masters): refused while one of its deploys is active; its
    releases stay on the hosts and its records are kept (``services/project_deletion``)."""
    web = signed_in(request, db, space)
    check_csrf(web, csrf)
    try:
        project_deletion.delete_project(db, web.actor, _ref(space, name))
    except FerrymanError as exc:
        if exc.http_status in (401, 403, 404):
            raise
        return redirect(request, f"/s/{space}/projects/{name}", web.say(exc.message))
    return redirect(request, f"/s/{space}/projects", web._("%(name)s deleted.", name=name))


# --- releases ------------------------------------------------------------------------------


def _target_hosts(db: Any, found: Any, env: str) -> list[str]:
    """The hosts an environment deploys to, with ``servers:`` and ``labels:`` expanded the
    way a deploy expands them (a literal host no longer in the space is left out)."""
    named = found.config.get("environments", {}).get(env, {})
    if not (named.get("servers") or named.get("labels")):  # literal hosts: no inventory read
        config = parse_project(found.config)
        return [h.key for h in config.environment(env).hosts] if env in config.environments else []
    try:
        with db.read() as s:
            config = projects.effective_config(s, found)
    except ConfigError:
        config = parse_project(found.config)
        if env not in config.environments:
            return []
        return [h.key for h in config.environment(env).hosts]
    return [h.key for h in config.environment(env).hosts] if env in config.environments else []


def _releases(db: Any, found: Any, env: str) -> dict[str, Any]:
    history = deploy_views.host_history(db, found.id, env)
    details = deploy_views.release_details(db, found.id, env)
    good = deploy_views.good_releases(db, found.id, env)
    bad = rollouts.bad_releases(db, found.id, env)
    hosts = _target_hosts(db, found, env)
    lives = [history.get(h, {}).get("live") for h in hosts]
    counted = {x: lives.count(x) for x in lives if x}
    usual = max(counted, key=lambda x: (counted[x], x)) if counted else None
    rows = [
        {
            "host": h,
            "live": history.get(h, {}).get("live"),
            "releases": history.get(h, {}).get("releases", []),
            "drift": bool(usual) and history.get(h, {}).get("live") != usual,
        }
        for h in hosts
    ]
    names = sorted({n for r in rows for n in r["releases"]}, reverse=True)
    kept = []
    for n in names:
        on = [r["host"] for r in rows if n in r["releases"]]
        live_on = [r["host"] for r in rows if r["live"] == n]
        everywhere = bool(hosts) and all(n in good.get(h, set()) for h in hosts)
        kept.append(
            {
                **details.get(n, {"name": n}),
                "on": on,
                "live_on": live_on,
                "bad": n in bad,
                # a rollback is refused unless the release is complete on every host
                "can_roll_back": everywhere and n not in bad and len(live_on) < len(hosts),
            }
        )
    crossings = migrations.for_releases(db, found.id, env, names, hosts)
    return {
        "hosts": rows,
        "kept": kept,
        "usual": usual,
        "migrations": crossings["migrations"],
        "rollback_crosses": crossings["rollback_crosses"],
    }


@router.get("/s/{space}/projects/{name}/releases", response_class=HTMLResponse)
def releases(
    request: Request, space: str, name: str, db: DB, env: str = "", to: str = ""
) -> HTMLResponse:
    """Which release each host runs (drift highlighted), the kept releases, and — with
    ``to`` — the confirmation of a rollback to one of them."""
    web = signed_in(request, db, space)
    found, role = _project_role(db, web, space, name)
    envs = sorted(found.config.get("environments", {}))
    env = env if env in envs else (envs[0] if envs else "")
    table = (
        _releases(db, found, env)
        if env
        else {"hosts": [], "kept": [], "usual": None, "migrations": {}, "rollback_crosses": None}
    )
    confirm = None
    if to:
        target = next((k for k in table["kept"] if k["name"] == to), None)
        if target is not None and target["can_roll_back"]:
            confirm = {
                "release": target,
                "crossing": table["migrations"].get(to, {}).get("crossing"),
                "moves": [
                    {"host": h["host"], "from": h["live"], "has": to in h["releases"]}
                    for h in table["hosts"]
                ],
            }
    return page(
        request,
        web,
        "releases.html",
        project=found,
        env=env,
        envs=envs,
        role=role,
        confirm=confirm,
        **table,
    )


@router.post("/s/{space}/projects/{name}/releases/rollback", response_model=None)
def rollback(
    request: Request,
    space: str,
    name: str,
    db: DB,
    csrf: Csrf,
    env: Text,
    to: Text,
    force_migrations: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    web = signed_in(request, db, space)
    check_csrf(web, csrf)
    deploy = deploys.request_rollback(
        db,
        web.actor,
        _ref(space, name),
        env,
        to or None,
        force_migrations=force_migrations == "1",
        reason=reason.strip(),
    )
    wake_worker(request)
    return redirect(
        request, f"/s/{space}/deploys/{deploy.id}", web._("Rollback #%(id)s queued.", id=deploy.id)
    )


# --- config files ----------------------------------------------------------------------------


@router.get("/s/{space}/projects/{name}/config", response_class=HTMLResponse)
def config_page(
    request: Request, space: str, name: str, db: DB, env: str = "", path: str = "", host: str = ""
) -> HTMLResponse:
    web = signed_in(request, db, space)
    found, role = _project_role(db, web, space, name)
    envs = sorted(found.config.get("environments", {}))
    env = env if env in envs else (envs[0] if envs else "")
    ref = _ref(space, name)
    files = config_views.list_files(db, web.actor, ref, env) if env else []
    current = None
    history: list[dict[str, Any]] = []
    diff = ""
    previews: list[dict[str, Any]] = []
    if path:
        try:
            current = config_views.get_file(db, web.actor, ref, env, path)
        except FerrymanError:
            current = None
        try:
            history = config_views.history(db, web.actor, ref, env, path)
            if len(history) > 1:
                diff = config_views.diff(db, web.actor, ref, env, path)["diff"]
        except FerrymanError:
            history = []
        previews = (
            config_views.preview(db, web.actor, ref, env, host=host or None, path=path)
            if current
            else []
        )
    return page(
        request,
        web,
        "config.html",
        project=found,
        env=env,
        envs=envs,
        role=role,
        files=files,
        current=current,
        path=path,
        history=history,
        diff=diff,
        previews=previews,
        error="",
    )


@router.post("/s/{space}/projects/{name}/config", response_model=None)
def save_config(
    request: Request,
    space: str,
    name: str,
    db: DB,
    csrf: Csrf,
    env: Text,
    path: Text,
    content: Annotated[str, Form()] = "",
    mode: Annotated[str, Form()] = "",
    scope: Annotated[str, Form()] = "",
    keys: Annotated[str, Form()] = "",
    delete: Annotated[str, Form()] = "",
) -> Response:
    """Save a file (or, with ``scope``, its override for a label or host)."""
    web = signed_in(request, db, space)
    check_csrf(web, csrf)
    ref = _ref(space, name)
    content = content.replace("\r\n", "\n")
    if delete and scope:
        config_files.delete_override(db, web.actor, ref, env, path, scope)
    elif delete:
        config_files.delete_file(db, web.actor, ref, env, path)
    elif scope:
        pairs = dict(line.split("=", 1) for line in keys.splitlines() if "=" in line)
        config_files.set_override(
            db, web.actor, ref, env, path, scope, content=content or None, keys=pairs
        )
    else:
        config_files.set_file(db, web.actor, ref, env, path, content, mode or None)
    target = f"/s/{space}/projects/{name}/config?env={env}" + (
        "" if delete and not scope else f"&path={path}"
    )
    return redirect(request, target, web._("Saved."))
