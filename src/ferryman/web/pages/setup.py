"""Setting a space up without a shell: spaces (a superuser creates them, an owner renames or
disables one), environments (approval, variables, secret variables), and per project its
secrets and its members' role overrides. Each form calls the service the API calls (which
checks the role and writes the audit row); refusals that are not about permission are shown
at the form with what was typed kept."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from ferryman.errors import FerrymanError, ValidationError
from ferryman.http_deps import DB
from ferryman.said import said
from ferryman.services import inventory, projects, secrets, spaces
from ferryman.services.authz import project_role
from ferryman.web import i18n
from ferryman.web.render import page, redirect
from ferryman.web.session import Viewer, check_csrf, signed_in

router = APIRouter()
Csrf = Annotated[str, Form()]
Text = Annotated[str, Form()]
Optional = Annotated[str, Form()]
MASK = "***"


def _refused(exc: FerrymanError) -> None:
    """Who-may-do-it refusals stay error pages (403/404 with the navigation)."""
    if exc.http_status in (401, 403, 404):
        raise exc


def _at_field(web: Viewer, message: str, field: str) -> str:
    """A refusal shown at its field, in the viewer's language, without the field's key
    (``display_name: ``) that the API's message starts with."""
    return web.say(message).removeprefix(f"{field}: ")


# --- spaces ----------------------------------------------------------------------------------


def _spaces_page(
    request: Request,
    web: Viewer,
    db: Any,
    errors: dict[str, str],
    values: dict[str, str],
    code: int,
) -> HTMLResponse:
    return page(
        request,
        web,
        "spaces.html",
        status=code,
        rows=spaces.list_spaces(db, web.actor),
        errors=errors,
        values=values,
    )


@router.get("/spaces", response_class=HTMLResponse)
def space_list(request: Request, db: DB) -> HTMLResponse:
    web = signed_in(request, db)
    return _spaces_page(request, web, db, {}, {}, 200)


@router.post("/spaces", response_model=None)
def create_space(
    request: Request,
    db: DB,
    csrf: Csrf,
    name: Text,
    description: Optional = "",
    owner: Optional = "",
    display_name: Optional = "",
) -> Response:
    web = signed_in(request, db)
    check_csrf(web, csrf)
    values = {"name": name, "description": description, "owner": owner}
    values["display_name"] = display_name
    try:
        made = spaces.create_space(
            db,
            web.actor,
            name.strip(),
            description.strip(),
            owner.strip() or None,
            display_name=display_name,
        )
    except FerrymanError as exc:
        _refused(exc)
        field = "owner" if "user" in exc.message and owner else "name"
        message = exc.message
        if exc.message.startswith("display_name: "):
            field = "display_name"
            message = _at_field(web, exc.message, field)
        return _spaces_page(request, web, db, {field: message}, values, exc.http_status)
    return redirect(
        request, f"/s/{made['name']}/", web._("Space %(name)s created.", name=made["name"])
    )


@router.post("/spaces/{name}/active", response_model=None)
def set_active(request: Request, name: str, db: DB, csrf: Csrf, active: Optional = "") -> Response:
    """Disable a space (its projects stop deploying) or enable it again: an owner's call."""
    web = signed_in(request, db)
    check_csrf(web, csrf)
    spaces.update_space(db, web.actor, name, is_active=bool(active))
    told = (
        web._("%(name)s enabled.", name=name) if active else web._("%(name)s disabled.", name=name)
    )
    return redirect(request, "/spaces", told)


def _rename_page(
    request: Request,
    web: Viewer,
    space: dict[str, Any],
    errors: dict[str, str],
    values: dict[str, str],
    code: int = 200,
) -> HTMLResponse:
    return page(
        request, web, "space_rename.html", status=code, space=space, errors=errors, values=values
    )


@router.get("/spaces/{name}/rename", response_class=HTMLResponse)
def rename_form(request: Request, name: str, db: DB) -> HTMLResponse:
    """The display name of a space, for its owners and superusers (``space.manage``, as the
    API's ``PATCH /spaces/{space}``): others are refused here as they would be when posting."""
    web = signed_in(request, db, name)
    with db.read() as s:  # the service's own check, before a form that would be refused
        spaces.visible_space(s, web.actor, name, "space.manage")
    space = spaces.get_space(db, web.actor, name)
    return _rename_page(request, web, space, {}, {"display_name": space["display_name"]})


@router.post("/spaces/{name}/rename", response_model=None)
def rename_space(
    request: Request, name: str, db: DB, csrf: Csrf, display_name: Optional = ""
) -> Response:
    """Change a space's display name (empty: its name is shown); the name in URLs stays."""
    web = signed_in(request, db, name)
    check_csrf(web, csrf)
    try:
        renamed = spaces.update_space(db, web.actor, name, display_name=display_name)
    except FerrymanError as exc:
        _refused(exc)
        space = spaces.get_space(db, web.actor, name)
        typed = {"display_name": display_name}
        shown = _at_field(web, exc.message, "display_name")
        return _rename_page(request, web, space, {"display_name": shown}, typed, exc.http_status)
    if renamed["display_name"]:
        told = web._(
            "Space %(name)s is now shown as %(shown)s.", name=name, shown=renamed["display_name"]
        )
    else:
        told = web._("Space %(name)s is shown by its name again.", name=name)
    return redirect(request, "/spaces", told)


# --- environments ----------------------------------------------------------------------------


def parse_variables(text: str, field: str) -> dict[str, str]:
    """``NAME=value`` per line (blank lines and ``#`` comments skipped)."""
    out: dict[str, str] = {}
    for number, raw in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise ValidationError(said("line %(n)s: write NAME=value", n=number), field=field)
        out[name.strip()] = value.strip()
    return out


def _as_text(variables: dict[str, str]) -> str:
    return "\n".join(f"{k}={v}" for k, v in variables.items())


def _env_values(env: dict[str, Any]) -> dict[str, str]:
    secret = set(env["secrets"])
    return {
        "name": env["name"],
        "description": env["description"],
        "approval": "1" if env["requires_approval"] else "",
        "variables": _as_text({k: v for k, v in env["variables"].items() if k not in secret}),
        "secret_variables": _as_text({k: MASK for k in env["variables"] if k in secret}),
    }


def _environments_page(
    request: Request,
    web: Viewer,
    db: Any,
    space: str,
    errors: dict[str, dict[str, str]] | None = None,
    kept: dict[str, dict[str, str]] | None = None,
    code: int = 200,
) -> HTMLResponse:
    envs = inventory.list_environments(db, web.actor, space)
    forms = {str(e["id"]): _env_values(e) for e in envs}
    forms["new"] = {"name": "", "description": "", "approval": "", "variables": ""}
    forms["new"]["secret_variables"] = ""
    forms.update(kept or {})
    return page(
        request,
        web,
        "environments.html",
        status=code,
        envs=envs,
        forms=forms,
        errors=errors or {},
    )


@router.get("/s/{space}/environments", response_class=HTMLResponse)
def environments(request: Request, space: str, db: DB) -> HTMLResponse:
    web = signed_in(request, db, space)
    return _environments_page(request, web, db, space)


@router.post("/s/{space}/environments", response_model=None)
def save_environment(
    request: Request,
    space: str,
    db: DB,
    csrf: Csrf,
    form_id: Text,
    name: Optional = "",
    description: Optional = "",
    approval: Optional = "",
    variables: Optional = "",
    secret_variables: Optional = "",
) -> Response:
    """Create an environment (``form_id`` ``new``) or change one (its id)."""
    web = signed_in(request, db, space)
    check_csrf(web, csrf)
    typed = {
        "name": name,
        "description": description,
        "approval": approval,
        "variables": variables,
        "secret_variables": secret_variables,
    }
    try:
        plain = parse_variables(variables, "variables")
        hidden = parse_variables(secret_variables, "secret_variables")
        both = plain & hidden.keys()
        if both:
            raise ValidationError(
                said("%(names)s: both a variable and a secret variable", names=sorted(both)),
                field="secret_variables",
            )
        merged = {**plain, **hidden}
        if form_id == "new":
            inventory.create_environment(
                db,
                web.actor,
                space,
                name.strip(),
                description=description.strip(),
                variables=merged,
                secrets=sorted(hidden),
                requires_approval=bool(approval),
            )
        else:
            env_id = int(form_id) if form_id.isdigit() else 0
            _env_of_space(db, web, space, env_id)
            inventory.update_environment(
                db,
                web.actor,
                env_id,
                description=description.strip(),
                variables=merged,
                secrets=sorted(hidden),
                requires_approval=bool(approval),
            )
    except FerrymanError as exc:
        _refused(exc)
        field = str(exc.details.get("field") or "")
        if not field:
            text = exc.message.lower()
            field = next((f for f in ("secret", "variable", "name") if text.startswith(f)), "name")
            field = {"secret": "secret_variables", "variable": "variables"}.get(field, field)
        return _environments_page(
            request,
            web,
            db,
            space,
            {form_id: {field: exc.message}},
            {form_id: typed},
            exc.http_status,
        )
    shown = name.strip() or form_id
    return redirect(
        request, f"/s/{space}/environments", web._("Environment %(name)s saved.", name=shown)
    )


def _env_of_space(db: Any, web: Viewer, space: str, env_id: int) -> dict[str, Any]:
    """The environment, only if it belongs to the space in the URL (an id from another
    space is not found here, whatever the viewer may do there)."""
    from ferryman.errors import NotFound

    env = inventory.get_environment(db, web.actor, env_id)
    if web.space is None or env["space_id"] != web.space["id"] or web.space["name"] != space:
        raise NotFound(f"no environment #{env_id} in {space}")
    return env


@router.post("/s/{space}/environments/{env_id}/delete", response_model=None)
def delete_environment(request: Request, space: str, env_id: int, db: DB, csrf: Csrf) -> Response:
    web = signed_in(request, db, space)
    check_csrf(web, csrf)
    env = _env_of_space(db, web, space, env_id)
    try:
        inventory.delete_environment(db, web.actor, env_id)
    except FerrymanError as exc:
        _refused(exc)
        return redirect(request, f"/s/{space}/environments", web.say(exc.message))
    return redirect(
        request, f"/s/{space}/environments", web._("%(name)s removed.", name=env["name"])
    )


# --- a project's secrets and members ---------------------------------------------------------


def _access_page(
    request: Request,
    web: Viewer,
    db: Any,
    space: str,
    name: str,
    errors: dict[str, str] | None = None,
    kept: dict[str, str] | None = None,
    code: int = 200,
) -> HTMLResponse:
    ref = f"{space}:{name}"
    with db.read() as s:
        found = projects.find_project(s, web.actor, ref, "project.read")
        role = project_role(s, web.actor, found)
    envs = sorted(found.config.get("environments", {}))
    listed = {env: secrets.list_secrets(db, web.actor, ref, env) for env in envs}
    members = (
        projects.list_project_members(db, web.actor, ref) if web.can("member.read", role) else []
    )
    space_members = (
        spaces.list_members(db, web.actor, space) if web.can("member.manage", role) else []
    )
    return page(
        request,
        web,
        "project_access.html",
        status=code,
        project=found,
        role=role,
        envs=envs,
        secrets=listed,
        members=members,
        space_members=space_members,
        errors=errors or {},
        kept=kept or {},
    )


@router.get("/s/{space}/projects/{name}/access", response_class=HTMLResponse)
def access(request: Request, space: str, name: str, db: DB) -> HTMLResponse:
    web = signed_in(request, db, space)
    return _access_page(request, web, db, space, name)


@router.post("/s/{space}/projects/{name}/secrets", response_model=None)
def set_secret(
    request: Request,
    space: str,
    name: str,
    db: DB,
    csrf: Csrf,
    env: Text,
    secret: Text,
    value: Optional = "",
    delete: Optional = "",
) -> Response:
    """Set a secret (its value is never shown again) or delete it."""
    web = signed_in(request, db, space)
    check_csrf(web, csrf)
    ref = f"{space}:{name}"
    try:
        if delete:
            secrets.delete_secret(db, web.actor, ref, env, secret.strip())
            told = web._("Secret %(name)s deleted.", name=secret.strip())
        else:
            if not value:
                raise ValidationError(said("a value is required"), field="value")
            secrets.set_secret(db, web.actor, ref, env, secret.strip(), value)
            told = web._("Secret %(name)s saved.", name=secret.strip())
    except FerrymanError as exc:
        _refused(exc)
        field = str(exc.details.get("field") or "secret")
        kept = {"env": env, "secret": secret}  # never the value: it is not echoed back
        return _access_page(
            request, web, db, space, name, {field: exc.message}, kept, exc.http_status
        )
    return redirect(request, f"/s/{space}/projects/{name}/access", told)


@router.post("/s/{space}/projects/{name}/members", response_model=None)
def set_project_member(
    request: Request,
    space: str,
    name: str,
    db: DB,
    csrf: Csrf,
    username: Text,
    role: Optional = "",
) -> Response:
    """Override a member's role for this project; an empty role removes the override."""
    web = signed_in(request, db, space)
    check_csrf(web, csrf)
    ref = f"{space}:{name}"
    user = username.strip()
    try:
        if role:
            projects.set_project_member(db, web.actor, ref, user, role)
            told = web._(
                "%(name)s is %(role)s on this project.",
                name=user,
                role=i18n.label(web.lang, role),
            )
        else:
            projects.remove_project_member(db, web.actor, ref, user)
            told = web._("%(name)s has the space role again.", name=user)
    except FerrymanError as exc:
        if exc.http_status in (401, 403):
            raise
        return _access_page(
            request,
            web,
            db,
            space,
            name,
            {"member": exc.message},
            {"username": user, "role": role},
            exc.http_status,
        )
    return redirect(request, f"/s/{space}/projects/{name}/access", told)
